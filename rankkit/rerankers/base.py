"""The reranker contract: two levels, and everything they share done once, here.

A reranker rescores the candidates of an incoming run. It implements ONE method:

- pairwise, :class:`Reranker`: ``score_pairs(query_texts, qidx, docids) -> scores``,
  one score per (query, candidate) row over all queries' candidates at once
  (cross-encoders, bi-encoders);
- list-level, :class:`ListReranker`: ``rank_lists(query_texts, candidates, first_scores)``,
  each query's candidate list in first-stage order (best first), answered per
  query by scores or by an order (listwise and setwise LLM rerankers).

The base class does the rest once for both: the missing-run error, empty runs
and queries without candidates (kept, empty), query order, the rerank
``depth`` (only the top ``depth`` candidates are reranked; the others follow in
first-stage order), interpolation with the first stage (``interpolated(w)``,
per-query z-scores), timing (``stats["seconds"]``) and ``describe()``.

Adding a reranker = one module under ``rankkit/rerankers/`` with a subclass of
either class, plus one line in :data:`rankkit.rerankers.registry.RERANKERS`
(or ``rk.register_reranker(name, cls)`` from your own code).
"""

from __future__ import annotations

import copy
import time
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError, RankkitError
from ..pipeline import Stage, fuse_runs
from ..types import Queries, Run

_EMPTY_DOCS = np.empty(0, dtype=object)


def check_interpolation(weight: Any) -> float | None:
    """A reranker/first-stage mixing weight in [0, 1] (or None: the reranker's scores only)."""
    if weight is None:
        return None
    try:
        w = float(weight)
    except (TypeError, ValueError):
        raise ConfigError(f"interpolation weight must be a number in [0, 1] (or 'auto' for a "
                          f"model's own tuned weight), got {weight!r}") from None
    if not 0.0 <= w <= 1.0:
        raise ConfigError(f"interpolation weight must be in [0, 1], got {weight}")
    return w


def check_depth(depth: Any) -> int | None:
    """A rerank depth: a positive integer, or None (rerank every candidate)."""
    if depth is None:
        return None
    if not isinstance(depth, (int, np.integer)) or isinstance(depth, bool) or depth < 1:
        raise ConfigError(f"rerank depth must be a positive integer, got {depth!r}")
    return int(depth)


class Reranker(Stage):
    """Rescores the candidates of an incoming run (pairwise level: implement :meth:`score_pairs`).

    Subclasses need no ``__init__`` call into this class: its settings are
    class attributes that :meth:`interpolated` and :meth:`with_depth` override
    on a copy.
    """

    name = "reranker"
    #: weight w of the new scores in (1 - w) * z(first stage) + w * z(new), per query; None = new scores only
    interpolate: float | None = None
    #: rerank only each query's top ``depth`` candidates (the rest follow in first-stage order); None = all
    depth: int | None = None

    # ------------------------------------------------------------------ what subclasses implement
    def score_pairs(self, query_texts: list[str], qidx: np.ndarray, docids: np.ndarray) -> np.ndarray:
        """One score per row: ``docids[i]`` is a candidate of query ``query_texts[qidx[i]]``."""
        raise NotImplementedError(f"{type(self).__name__} implements neither score_pairs nor rank_lists")

    def tuned_interpolation(self) -> float | None:
        """The weight ``interpolate="auto"`` stands for (e.g. one tuned for the model); None: no mix."""
        return None

    # ------------------------------------------------------------------ settings, on a copy
    def interpolated(self, weight: float | str | None) -> Reranker:
        """This reranker, its scores mixed with the first stage's (z-scores per query, ``weight`` on its own).

        Score interpolation with the retriever is standard practice for
        rerankers that are good but not uniformly better than the first stage.
        ``"auto"`` takes :meth:`tuned_interpolation`.
        """
        twin = copy.copy(self)
        twin.interpolate = self.resolve_interpolation(weight)
        return twin

    def resolve_interpolation(self, weight: float | str | None) -> float | None:
        """``weight`` checked, with ``"auto"`` replaced by this reranker's tuned weight (or None)."""
        if isinstance(weight, str) and weight == "auto":
            return check_interpolation(self.tuned_interpolation())
        return check_interpolation(weight)

    def with_depth(self, depth: int | None) -> Reranker:
        """This reranker, reranking only each query's top ``depth`` candidates."""
        twin = copy.copy(self)
        twin.depth = check_depth(depth)
        return twin

    # ------------------------------------------------------------------ the stage
    def transform(self, queries: Queries, run: Run | None) -> Run:
        if run is None:
            raise RankkitError(
                f"{type(self).__name__} reranks candidates: put a retriever before it (retriever >> reranker)"
            )
        t0 = time.perf_counter()
        qids = list(queries)
        first = run.with_queries(qids)  # query order; a query absent from the run gets no candidates
        head = first.top(self.depth) if self.depth else first
        scores = self._rerank([queries[q] for q in qids], qids, head)
        out = Run.from_sorted({q: _by_score(head.docids(q), s) for q, s in zip(qids, scores)},
                              name=self.name)
        if self.interpolate is not None:
            w = self.interpolate
            out = fuse_runs([head, out], method="linear", norm="zscore", weights=[1.0 - w, w], qids=qids)
            out.name = f"{self.name}+first({w:g})"
        if self.depth:
            out = _append_tails(out, first, self.depth)
        self._record(len(qids), head.num_hits(), time.perf_counter() - t0)
        return out

    def _rerank(self, texts: list[str], qids: list[str], head: Run) -> list[np.ndarray]:
        """Per query, one score per candidate of ``head`` (in its order): the pairwise level."""
        _, qidx, docids = head.pairs(qids)
        raw = self.score_pairs(texts, qidx, docids) if len(docids) else np.empty(0)
        raw = np.asarray(raw, dtype=np.float64).reshape(-1)
        if len(raw) != len(docids):
            raise RankkitError(f"{type(self).__name__}.score_pairs returned {len(raw)} scores "
                               f"for {len(docids)} pairs")
        sizes = [len(head.docids(q)) for q in qids]
        return np.split(raw, np.cumsum(sizes)[:-1]) if qids else []

    def _record(self, n_queries: int, n_candidates: int, seconds: float) -> None:
        """Add one call to ``self.stats`` (created on first use; a subclass may keep its own keys there)."""
        stats = self.__dict__.get("stats")
        if not isinstance(stats, dict):
            stats = self.__dict__["stats"] = {}
        stats["calls"] = stats.get("calls", 0) + 1
        stats["queries"] = stats.get("queries", 0) + n_queries
        stats["candidates"] = stats.get("candidates", 0) + n_candidates
        stats["seconds"] = stats.get("seconds", 0.0) + seconds
        stats["last_seconds"] = seconds

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        if self.interpolate is not None:
            d.setdefault("interpolate", self.interpolate)
        if self.depth:
            d.setdefault("depth", self.depth)
        return d


class ListReranker(Reranker):
    """A list-level reranker: implement :meth:`rank_lists` (listwise, setwise).

    ``returns`` says what :meth:`rank_lists` gives per query: ``"order"`` (a
    permutation of the candidate indexes, best first; candidate at place r of n
    gets score n - r) or ``"scores"`` (one score per candidate, in the given order).
    """

    name = "list-reranker"
    returns: ClassVar[str] = "order"

    def rank_lists(self, query_texts: list[str], candidates: list[np.ndarray],
                   first_scores: list[np.ndarray]) -> list[np.ndarray]:
        """Per query (only queries with candidates are passed), an order or scores over ``candidates[i]``.

        ``candidates[i]`` holds query i's docids in first-stage order (best
        first), ``first_scores[i]`` their first-stage scores.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement rank_lists")

    def _rerank(self, texts: list[str], qids: list[str], head: Run) -> list[np.ndarray]:
        if self.returns not in ("order", "scores"):
            raise ConfigError(f"{type(self).__name__}.returns must be 'order' or 'scores', got {self.returns!r}")
        scores = [np.empty(0) for _ in qids]
        todo = [i for i, q in enumerate(qids) if len(head.docids(q))]
        if not todo:
            return scores
        cands = [head.docids(qids[i]) for i in todo]
        got = self.rank_lists([texts[i] for i in todo], cands, [head.scores(qids[i]) for i in todo])
        if len(got) != len(todo):
            raise RankkitError(f"{type(self).__name__}.rank_lists returned {len(got)} lists for {len(todo)} queries")
        for i, c, answer in zip(todo, cands, got):
            scores[i] = self._as_scores(qids[i], answer, len(c))
        return scores

    def _as_scores(self, qid: str, answer: Any, n: int) -> np.ndarray:
        a = np.asarray(answer)
        if self.returns == "scores":
            if a.shape != (n,):
                raise RankkitError(f"{type(self).__name__}: query {qid!r}: {a.size} scores for {n} candidates")
            return a.astype(np.float64)
        if a.shape != (n,) or (n and not np.issubdtype(a.dtype, np.integer)) \
                or not np.array_equal(np.sort(a), np.arange(n)):
            raise RankkitError(f"{type(self).__name__}: query {qid!r}: the order must be a permutation "
                               f"of 0..{n - 1}, got {a.tolist()[:10]}")
        return order_to_scores(a)


def order_to_scores(order: np.ndarray) -> np.ndarray:
    """Descending scores from an order: the candidate placed r-th (from 0) of n scores n - r."""
    n = len(order)
    scores = np.empty(n, dtype=np.float64)
    scores[np.asarray(order, dtype=np.int64)] = n - np.arange(n, dtype=np.float64)
    return scores


def _by_score(docids: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidates sorted by new score, ties kept in first-stage order."""
    order = np.argsort(-scores, kind="stable")
    return docids[order], scores[order]


def _append_tails(out: Run, first: Run, depth: int) -> Run:
    """Below each reranked head, the candidates past ``depth`` in first-stage order, one point apart."""
    merged: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for q in out.qids:
        d, s = out.arrays(q)
        tail = first.docids(q)[depth:]
        floor = float(s.min()) if len(s) else 0.0
        merged[q] = (np.concatenate([d, tail]) if len(tail) else d,
                     np.concatenate([s, floor - np.arange(1, len(tail) + 1, dtype=np.float64)]))
    return Run.from_sorted(merged, name=out.name)


__all__ = ["Reranker", "ListReranker", "check_interpolation", "check_depth", "order_to_scores"]
