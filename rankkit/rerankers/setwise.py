"""Setwise sorting over a "which of these is best?" chooser: heapsort and bubble sort (model-free).

Setwise ranking (Zhuang et al., SIGIR 2024; Rank-R1 uses it) sorts a candidate
list with an oracle that, shown a *set* of candidates, names the best one. Each
sort here is a Python generator: it yields one comparison at a time (a tuple of
candidate indexes, in first-stage order so a chooser's fallback "keep the first"
keeps the first-stage order) and receives the position *within that tuple* of
the winner. The final ``StopIteration.value`` is the full order (best first).
Generators let :func:`drive` advance the sorts of many queries in lock-step, so
the pending comparisons of all queries go to the model in one batched call.
Hand-written: no library sorts with a set-valued comparison oracle.

Comparisons (``n`` candidates, ``m = set_size - 1`` children per heap node):

- ``heap``: a ``m``-ary max-heap; every heapify visit of a node with at least
  one child costs one comparison (node + its children); building visits each of
  the ``ceil((n-1)/m)`` internal nodes at least once, then each of ``top_k``
  extractions sifts the new root down (at most the heap depth visits). The top
  ``top_k`` come out sorted; the rest follow in first-stage order.
- ``bubble``: ``top_k`` passes; pass ``p`` slides a window of ``set_size`` from
  the bottom up to place ``p`` with stride ``m``, carrying the winner up:
  exactly ``ceil((n - p - 1) / m)`` comparisons per pass (no skipping).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Sequence

from ..errors import ConfigError

#: a sort: yields candidate-index tuples, receives the winner's position in the tuple, returns the order
Sort = Generator[tuple[int, ...], int, list[int]]
SORTS = ("heap", "bubble")


def _check(n: int, set_size: int, top_k: int) -> None:
    if set_size < 2:
        raise ConfigError(f"set_size must be >= 2, got {set_size}")
    if n < 0 or top_k < 1:
        raise ConfigError(f"need n >= 0 and top_k >= 1, got n={n}, top_k={top_k}")


def _finish(top: list[int], n: int) -> list[int]:
    """``top`` (sorted) followed by the other candidates in first-stage order."""
    seen = set(top)
    return top + [i for i in range(n) if i not in seen]


def heap_sort(n: int, set_size: int, top_k: int) -> Sort:
    """Setwise heapsort of candidates ``0..n-1`` (first-stage order); the top ``top_k`` sorted."""
    _check(n, set_size, top_k)
    m = set_size - 1
    heap = list(range(n))

    def sift(i: int, size: int) -> Generator[tuple[int, ...], int, None]:
        while True:
            kids = [c for c in range(m * i + 1, m * i + m + 1) if c < size]
            if not kids:
                return
            slots = [i, *kids]
            # the set in first-stage order, so "keep the first" means "keep the first-stage order"
            slots.sort(key=lambda s: heap[s])
            won = yield tuple(heap[s] for s in slots)
            best = slots[int(won)]
            if best == i:
                return
            heap[i], heap[best] = heap[best], heap[i]
            i = best

    for i in range((n - 2) // m, -1, -1) if n > 1 else ():
        yield from sift(i, n)
    top: list[int] = []
    size = n
    while size > 0 and len(top) < top_k:
        top.append(heap[0])
        size -= 1
        heap[0] = heap[size]
        if len(top) < top_k:
            yield from sift(0, size)
    return _finish(top, n)


def bubble_sort(n: int, set_size: int, top_k: int) -> Sort:
    """Setwise bubble sort: ``top_k`` bottom-up passes, each carrying the best of the rest to the top."""
    _check(n, set_size, top_k)
    order = list(range(n))
    for p in range(min(top_k, n)):
        end = n
        while end - p > 1:
            start = max(p, end - set_size)
            window = order[start:end]
            won = yield tuple(window)
            w = int(won)
            order[start:end] = [window[w]] + window[:w] + window[w + 1:]
            end = start + 1
    return order


def make_sort(kind: str, n: int, set_size: int, top_k: int) -> Sort:
    """The sort generator named ``kind`` ("heap" or "bubble")."""
    if kind == "heap":
        return heap_sort(n, set_size, top_k)
    if kind == "bubble":
        return bubble_sort(n, set_size, top_k)
    raise ConfigError(f"sort must be one of {SORTS}, got {kind!r}")


def bubble_comparisons(n: int, set_size: int, top_k: int) -> int:
    """The exact number of comparisons :func:`bubble_sort` makes."""
    m = set_size - 1
    return sum(math.ceil((n - p - 1) / m) for p in range(min(top_k, n)) if n - p > 1)


def drive(sorts: Sequence[Sort], choose: Callable[[list[tuple[int, tuple[int, ...]]]], list[int]]) -> list[list[int]]:
    """Run many sorts in lock-step: each round, ``choose`` answers every pending comparison at once.

    ``choose`` gets ``[(sort index, candidate tuple), ...]`` and returns the
    winner's position in each tuple. Returns each sort's final order.
    """
    results: list[list[int] | None] = [None] * len(sorts)
    pending: dict[int, tuple[int, ...]] = {}
    for i, s in enumerate(sorts):
        try:
            pending[i] = next(s)
        except StopIteration as stop:
            results[i] = stop.value
    while pending:
        jobs = list(pending.items())
        won = choose(jobs)
        if len(won) != len(jobs):
            raise ValueError(f"chooser answered {len(won)} of {len(jobs)} comparisons")
        for (i, cands), w in zip(jobs, won):
            if not 0 <= int(w) < len(cands):
                w = 0
            try:
                pending[i] = sorts[i].send(int(w))
            except StopIteration as stop:
                del pending[i]
                results[i] = stop.value
    return [r if r is not None else [] for r in results]


__all__ = ["heap_sort", "bubble_sort", "make_sort", "drive", "bubble_comparisons", "SORTS"]
