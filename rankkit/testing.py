"""The stage contract as checks: every retriever and reranker test runs one of them.

>>> from rankkit.testing import check_reranker, check_retriever
>>> check_retriever(bm25, dataset.queries)
>>> check_reranker(my_reranker, dataset.queries, (bm25 % 10)(dataset.queries))

A check raises ``AssertionError`` naming the rule a stage breaks; it needs no
test framework (pytest is not imported). What every stage promises:

- every query given comes back, in the order given, also a query with no hits
  or no candidates (an empty ranking); no queries give an empty run;
- each ranking is sorted best first without duplicates; a query's ranking does
  not depend on the other queries of the batch;
- ``describe()`` is a dict with ``"stage"``; ``stage % k`` returns at most ``k``
  per query, the top ``k`` of the uncut ranking.

Rerankers also: no incoming run is a ``RankkitError``; they only reorder the
candidates they get; interpolation with weight 0 gives the first-stage order
and weight 1 the reranker's own; ``with_depth(d)`` reranks the top ``d`` and keeps
the rest below in first-stage order; each call is timed in ``stats["seconds"]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import RankkitError
from .types import Queries, Run, as_run

#: a query id no collection uses, for the "query without hits/candidates" rules
NO_HITS_QID = "__rankkit_no_hits__"


def _expect(ok: Any, rule: str) -> None:
    if not ok:
        raise AssertionError(rule)


def _raises(exc: type[BaseException], fn: Callable[[], Any], rule: str) -> BaseException:
    try:
        fn()
    except exc as e:
        return e
    raise AssertionError(rule)


def _reversed(queries: Queries) -> Queries:
    return Queries({q: queries[q] for q in reversed(queries.ids)})


def _check_rankings(run: Run, qids: list[str], who: str) -> None:
    _expect(run.qids == qids, f"{who}: queries must come back in the order given, each once "
                              f"(got {run.qids[:5]}..., expected {qids[:5]}...)")
    for q in qids:
        d, s = run.arrays(q)
        _expect(len(set(d.tolist())) == len(d), f"{who}: query {q!r} ranks a document twice")
        _expect(np.all(np.diff(s) <= 0), f"{who}: query {q!r} is not sorted best first")


def _same_scores(a: Run, b: Run, q: str, who: str, exact_order: bool) -> None:
    if exact_order:
        _expect(a.docids(q).tolist() == b.docids(q).tolist(),
                f"{who}: query {q!r} is ranked differently")
    sa, sb = dict(a[q]), dict(b[q])
    _expect(set(sa) == set(sb), f"{who}: query {q!r} returns other documents")
    keys = list(sa)
    _expect(np.allclose([sa[d] for d in keys], [sb[d] for d in keys], rtol=1e-4, atol=1e-5),
            f"{who}: query {q!r} gets other scores")


def _check_describe(stage: Any) -> None:
    d = stage.describe()
    _expect(isinstance(d, dict) and isinstance(d.get("stage"), str),
            f"describe() must be a dict with a 'stage' name, got {d!r}")


def _check_cutoff(cut: Run, full: Run, k: int, who: str, exact: bool) -> None:
    _expect(cut.qids == full.qids, f"{who} % {k}: queries must stay, in order")
    for q in full.qids:
        _expect(len(cut.docids(q)) <= k, f"{who} % {k}: query {q!r} has {len(cut.docids(q))} results")
        if exact:
            _expect(np.allclose(cut.scores(q), full.scores(q)[:k], rtol=1e-4, atol=1e-5),
                    f"{who} % {k}: query {q!r} is not the top {k} of the uncut ranking")


def check_retriever(stage: Any, queries: Any, k: int = 3, exact: bool = True) -> Run:
    """Check a first-stage stage (retriever, fusion) on ``queries``; returns its run.

    ``exact=False`` for approximate indexes: results may then depend on the batch
    and a cutoff need not return the uncut top ``k``.
    """
    queries = Queries.coerce(queries)
    who = type(stage).__name__
    _expect(len(queries) >= 2, "check_retriever needs at least two queries")
    _check_describe(stage)
    _expect(len(as_run(stage(Queries({})))) == 0, f"{who}: no queries must give an empty run")
    run = as_run(stage(queries))
    _check_rankings(run, queries.ids, who)
    back = as_run(stage(_reversed(queries)))
    _check_rankings(back, _reversed(queries).ids, f"{who} (queries reversed)")
    if exact:
        for q in queries:
            _same_scores(back, run, q, f"{who} (queries reversed)", exact_order=False)
    odd = Queries({**dict(queries), NO_HITS_QID: "qzxjv wkyvbp"})
    _check_rankings(as_run(stage(odd)), odd.ids, f"{who} (a query matching nothing)")
    _check_cutoff(as_run((stage % k)(queries)), run, k, who, exact)
    return run


def check_reranker(stage: Any, queries: Any, first: Run, k: int = 2, depth: int = 2) -> Run:
    """Check a reranker on ``queries`` and their first-stage ``first`` run; returns its run.

    ``first`` needs some query with more than ``depth`` candidates.
    """
    queries = Queries.coerce(queries)
    first = first.with_queries(queries.ids)
    who = type(stage).__name__
    qids = queries.ids
    _expect(any(len(first.docids(q)) > depth for q in qids),
            f"check_reranker needs a query with more than {depth} candidates")
    _check_describe(stage)
    _raises(RankkitError, lambda: stage(queries), f"{who}: no incoming run must be a RankkitError")
    _expect(len(as_run(stage(Queries({}), Run()))) == 0, f"{who}: no queries must give an empty run")
    empty = as_run(stage(queries, Run()))
    _check_rankings(empty, qids, f"{who} (empty run)")
    _expect(empty.num_hits() == 0, f"{who}: an empty run must stay empty")

    calls = dict(getattr(stage, "stats", None) or {}).get("calls", 0)
    out = as_run(stage(queries, first))
    stats = getattr(stage, "stats", None)
    _expect(isinstance(stats, dict) and stats.get("calls", 0) > calls
            and isinstance(stats.get("seconds"), float) and stats["seconds"] >= 0,
            f"{who}: each call must be counted and timed in stats['calls'] / stats['seconds']")
    _check_rankings(out, qids, who)
    for q in qids:
        _expect(sorted(out.docids(q).tolist()) == sorted(first.docids(q).tolist()),
                f"{who}: query {q!r}: a reranker reorders its candidates, it must not add or drop any")

    back = as_run(stage(_reversed(queries), first))
    _check_rankings(back, _reversed(queries).ids, f"{who} (queries reversed)")
    for q in qids:
        _same_scores(back, out, q, f"{who} (queries reversed)", exact_order=False)

    blank = qids[0]
    holed = Run.from_sorted({q: first.arrays(q) if q != blank else (np.empty(0, dtype=object), np.empty(0))
                             for q in qids})
    got = as_run(stage(queries, holed))
    _check_rankings(got, qids, f"{who} (a query without candidates)")
    _expect(len(got.docids(blank)) == 0, f"{who}: a query without candidates must stay, empty")
    for q in qids[1:]:
        _same_scores(got, out, q, f"{who} (a query without candidates)", exact_order=False)

    raw = as_run(stage.interpolated(None)(queries, first))
    for w, expect, what in ((0.0, first, "first-stage"), (1.0, raw, "reranker's own")):
        mixed = as_run(stage.interpolated(w)(queries, first))
        for q in qids:
            _expect(mixed.docids(q).tolist() == expect.docids(q).tolist(),
                    f"{who}.interpolated({w}): query {q!r} must keep the {what} order")

    _check_cutoff(as_run((stage % k)(queries, first)), out, k, who, exact=True)

    deep = as_run(stage.with_depth(depth)(queries, first))
    head_only = as_run(stage(queries, first.top(depth)))
    for q in qids:
        d = deep.docids(q).tolist()
        _expect(d[:depth] == head_only.docids(q).tolist(),
                f"{who}.with_depth({depth}): query {q!r}: the top {depth} must be reranked as alone")
        _expect(d[depth:] == first.docids(q)[depth:].tolist(),
                f"{who}.with_depth({depth}): query {q!r}: the rest must keep the first-stage order")
    _check_rankings(deep, qids, f"{who}.with_depth({depth})")
    return out


__all__ = ["check_retriever", "check_reranker", "NO_HITS_QID"]
