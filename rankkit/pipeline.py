"""Stages and the operators that compose them.

A ``Stage`` maps ``(queries, run=None)`` to a ``Run`` (or, for a generator, a
``Result``). ``a >> b`` chains, ``a % k`` cuts each ranking to ``k`` (pushed
into a retriever so it searches for ``k`` directly) and ``fuse(a, b)`` merges
rankings. Everything is batched over all queries at once; :func:`run_stages`
is the one loop that runs a chain (``Pipeline`` and ``rankkit run`` both use it).

Where new stages go: a retriever subclasses :class:`Retriever` (in
``rankkit/retrievers/``), a reranker subclasses ``rankkit.rerankers.base.Reranker``
or ``ListReranker`` and takes one line in ``rankkit.rerankers.registry.RERANKERS``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .errors import ConfigError, RankkitError
from .types import Queries, Result, Run, as_run


class Stage:
    """Base class of every retriever, reranker, fusion and generator."""

    #: short name shown by ``describe()`` and in pipeline reprs
    name: str = "stage"

    def __call__(self, queries: Any, run: Run | None = None) -> Run | Result:
        return self.transform(Queries.coerce(queries), run)

    def transform(self, queries: Queries, run: Run | None) -> Run | Result:
        raise NotImplementedError

    # operators ---------------------------------------------------------------
    def __rshift__(self, other: Stage) -> Pipeline:
        if not isinstance(other, Stage):
            return NotImplemented
        return Pipeline([self, other])

    def __mod__(self, k: int) -> Stage:
        _check_k(k)
        return Pipeline([self, Cutoff(k)])

    # introspection -----------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """Parameters that define this stage (for ``describe``)."""
        return {}

    def describe(self) -> dict[str, Any]:
        return {"stage": self.name, **self.params()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    # convenience ---------------------------------------------------------------
    def search(self, query: str, k: int = 10) -> list[tuple[str, float]]:
        """Rank for one query interactively: ``[(docid, score), ...]`` best first."""
        if not isinstance(query, str) or not query.strip():
            raise RankkitError("search() needs a non-empty query string")
        out = as_run((self % k)({"q": query}))
        return out["q"]


def _check_k(k: Any) -> None:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"rank cutoff must be a positive integer, got {k!r}")


class TopK(Stage):
    """A stage that produces its own top ``k`` (so ``% k`` is pushed into it, not run after it)."""

    #: results per query; ``None``: the stage's default
    k: int | None = None

    def with_k(self, k: int) -> Any:
        """A copy that returns ``k`` results (never more than an earlier cutoff)."""
        clone = copy.copy(self)
        clone.k = min(int(k), self.k) if self.k else int(k)
        return clone

    def __mod__(self, k: int) -> Any:
        _check_k(k)
        return self.with_k(k)


class Retriever(TopK):
    """A first-stage retriever: ignores any incoming run, searches its index.

    Subclasses implement :meth:`retrieve`; ``% k`` returns a copy that searches
    for ``k`` results directly (cutoff pushdown).
    """

    name = "retriever"
    default_k: int = 1000

    def retrieve(self, queries: Queries, k: int) -> Run:
        raise NotImplementedError

    def transform(self, queries: Queries, run: Run | None) -> Run:
        queries.check_not_empty()
        return self.retrieve(queries, self.k or self.default_k)


class Cutoff(Stage):
    """Keeps the top ``k`` of each ranking."""

    name = "cutoff"

    def __init__(self, k: int):
        _check_k(k)
        self.k = int(k)

    def transform(self, queries: Queries, run: Run | None) -> Run:
        if run is None:
            raise RankkitError("a rank cutoff needs a stage before it")
        return run.top(self.k)

    def params(self) -> dict[str, Any]:
        return {"k": self.k}


class Pipeline(Stage):
    """Stages run in order; each gets the queries and the previous run.

    Calling a pipeline returns a ``Result`` with per-stage wall times.
    """

    name = "pipeline"

    def __init__(self, stages: Sequence[Stage]):
        flat: list[Stage] = []
        for st in stages:
            if not isinstance(st, Stage):
                raise ConfigError(f"pipeline items must be stages, got {type(st).__name__}")
            flat.extend(st.stages if isinstance(st, Pipeline) else [st])
        self.stages = _push_cutoffs(flat)

    def transform(self, queries: Queries, run: Run | None) -> Result:
        return run_stages(self.stages, queries, run)

    def __mod__(self, k: int) -> Pipeline:
        _check_k(k)
        return Pipeline([*self.stages, Cutoff(k)])

    def describe(self) -> dict[str, Any]:
        return {"stage": "pipeline", "stages": [s.describe() for s in self.stages]}

    def __repr__(self) -> str:
        return " >> ".join(_short(s) for s in self.stages)


StageCall = Callable[[int, Stage, Run | None], Run | Result]


def run_stages(stages: Sequence[Stage], queries: Queries, run: Run | None = None,
               call: StageCall | None = None) -> Result:
    """The one stage loop: stages in order, each fed the previous run, each timed.

    ``call(i, stage, run)`` runs one stage (default ``stage.transform(queries, run)``;
    ``rankkit run`` passes one that goes over chunks of queries with a progress
    bar). A stage that returns answers (a generator) must be the last one.
    Timings are keyed ``"<i>:<stage name>"``, followed by any the stages report.
    """
    timings: dict[str, float] = {}
    extra: dict[str, float] = {}
    answers = None
    out = run
    for i, stage in enumerate(stages):
        if answers is not None:
            raise RankkitError(f"stage {stage!r} comes after a generator; a generator must be last")
        t0 = time.perf_counter()
        got = call(i, stage, out) if call is not None else stage.transform(queries, out)
        timings[f"{i}:{stage.name}"] = time.perf_counter() - t0
        if isinstance(got, Result):
            answers = got.answers
            extra.update(got.timings)
            got = got.run
        out = got
    if out is None:
        raise RankkitError("an empty pipeline has nothing to return")
    return Result(run=out, answers=answers, timings={**timings, **extra})


def _short(stage: Stage) -> str:
    if isinstance(stage, Cutoff):
        return f"%{stage.k}"
    return repr(stage)


def _push_cutoffs(stages: list[Stage]) -> list[Stage]:
    """Fold ``retriever >> Cutoff(k)`` into ``retriever % k``; merge adjacent cutoffs."""
    out: list[Stage] = []
    for st in stages:
        if isinstance(st, Cutoff) and out:
            prev = out[-1]
            if isinstance(prev, Cutoff):
                out[-1] = Cutoff(min(prev.k, st.k))
                continue
            if isinstance(prev, TopK):
                out[-1] = prev.with_k(st.k)
                continue
        out.append(st)
    return out


# -------------------------------------------------------------------------- fusion
FUSION_METHODS = ("rrf", "linear")
SCORE_NORMS = ("minmax", "zscore", "rank", "none")


def _normalise(scores: np.ndarray, method: str) -> np.ndarray:
    if len(scores) == 0 or method == "none":
        return scores
    if method == "minmax":
        lo, hi = scores.min(), scores.max()
        return (scores - lo) / (hi - lo) if hi > lo else np.ones_like(scores)
    if method == "zscore":
        sd = scores.std()
        return (scores - scores.mean()) / sd if sd > 0 else np.zeros_like(scores)
    if method == "rank":
        return 1.0 / np.arange(1, len(scores) + 1)
    raise ConfigError(f"unknown score normalisation {method!r} (choose {', '.join(SCORE_NORMS)})")


def _floor(normalised: np.ndarray, method: str) -> float:
    """What a document missing from a run gets from it: the bottom of the run's scale.

    A run that did not return a document ranks it below everything it did
    return, so the document must not get more than the run's last hit: 0 for
    ``minmax`` and ``rank`` (their scales bottom out at 0), the lowest
    normalised score for ``zscore`` and ``none`` (0 there would be the mean, or
    above negative raw scores, and lift unseen documents over seen ones).
    """
    if method in ("minmax", "rank") or len(normalised) == 0:
        return 0.0
    return float(normalised.min())


def check_fusion(method: str, weights: Sequence[float] | None, n_inputs: int, rrf_k: float,
                 norm: str, k: int | None) -> list[float]:
    """Validate fusion settings (before any stage runs); returns the weights as a list."""
    if method not in FUSION_METHODS:
        raise ConfigError(f"unknown fusion method {method!r} (choose 'rrf' or 'linear')")
    if norm not in SCORE_NORMS:
        raise ConfigError(f"unknown score normalisation {norm!r} (choose {', '.join(SCORE_NORMS)})")
    if isinstance(rrf_k, bool) or not isinstance(rrf_k, (int, float, np.integer, np.floating)) \
            or not np.isfinite(rrf_k) or rrf_k < 0:
        raise ConfigError(f"rrf_k must be a number >= 0, got {rrf_k!r}")
    if k is not None:
        _check_k(k)
    if n_inputs < 1:
        raise ConfigError("fusion needs at least one run")
    if weights is None:
        return [1.0] * n_inputs
    weights = list(weights)
    if len(weights) != n_inputs:
        raise ConfigError(f"{len(weights)} fusion weights for {n_inputs} inputs")
    for w in weights:
        if isinstance(w, bool) or not isinstance(w, (int, float, np.integer, np.floating)) \
                or not np.isfinite(w):
            raise ConfigError(f"fusion weights must be finite numbers, got {w!r}")
    return [float(w) for w in weights]


def fuse_runs(runs: Sequence[Run], method: str = "rrf", weights: Sequence[float] | None = None,
              rrf_k: float = 60, norm: str = "minmax", k: int | None = None,
              qids: Sequence[str] | None = None) -> Run:
    """Merge rankings of several runs for the same queries.

    ``rrf``: sum of ``w / (rrf_k + rank)`` (rank from 1; a run that misses a
    document adds nothing). ``linear``: weighted sum of per-query normalised
    scores (``norm`` = minmax, zscore, rank or none); a document missing from a
    run gets the bottom of that run's scale (see :func:`_floor`). Ties keep the
    order in which documents were first seen (first run first).
    """
    weights = check_fusion(method, weights, len(runs), rrf_k, norm, k)
    if qids is None:
        seen: dict[str, None] = {}
        for r in runs:
            seen.update(dict.fromkeys(r.qids))
        qids = list(seen)
    fused: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for qid in qids:
        acc: dict[str, float] = {}
        floors = 0.0  # linear: sum of the floors of runs, added to every document ...
        for r, w in zip(runs, weights):
            d, s = r.arrays(qid) if qid in r else (np.empty(0, dtype=object), np.empty(0))
            if method == "rrf":
                contrib = w / (rrf_k + np.arange(1, len(d) + 1))
            else:
                normed = _normalise(s, norm)
                floor = _floor(normed, norm)
                floors += w * floor
                contrib = w * (normed - floor)  # ... so a run adds only what lifts a doc above it
            for docid, c in zip(d.tolist(), contrib.tolist()):
                acc[docid] = acc.get(docid, 0.0) + c
        docs = np.array(list(acc.keys()), dtype=object)
        vals = np.fromiter(acc.values(), dtype=np.float64, count=len(acc)) + floors
        order = np.argsort(-vals, kind="stable")[:k] if k else np.argsort(-vals, kind="stable")
        fused[qid] = (docs[order], vals[order])
    return Run.from_sorted(fused, name=f"fuse-{method}")


class Fusion(TopK):
    """Runs several stages (or uses fixed runs) and fuses their rankings."""

    name = "fuse"

    def __init__(self, parts: Sequence[Stage | Run], method: str = "rrf",
                 weights: Sequence[float] | None = None, rrf_k: float = 60,
                 norm: str = "minmax", k: int | None = None):
        if len(parts) < 1:
            raise ConfigError("fuse() needs at least one stage or run")
        for p in parts:
            if not isinstance(p, (Stage, Run)):
                raise ConfigError(f"fuse() takes stages or runs, got {type(p).__name__}")
        check_fusion(method, weights, len(parts), rrf_k, norm, k)  # fail before any stage runs
        self.parts = list(parts)
        self.method, self.weights, self.rrf_k, self.norm, self.k = method, weights, rrf_k, norm, k

    def transform(self, queries: Queries, run: Run | None) -> Run:
        runs = [p if isinstance(p, Run) else as_run(p.transform(queries, run)) for p in self.parts]
        return fuse_runs(runs, self.method, self.weights, self.rrf_k, self.norm, self.k,
                         qids=list(queries))

    def params(self) -> dict[str, Any]:
        p: dict[str, Any] = {"method": self.method}
        if self.method == "rrf":
            p["rrf_k"] = self.rrf_k
        else:
            p["norm"] = self.norm
        if self.weights is not None:
            p["weights"] = list(self.weights)
        if self.k:
            p["k"] = self.k
        return p

    def describe(self) -> dict[str, Any]:
        return {"stage": "fuse", **self.params(),
                "inputs": [p.describe() if isinstance(p, Stage) else repr(p) for p in self.parts]}

    def __repr__(self) -> str:
        inner = ", ".join(repr(p) for p in self.parts)
        return f"fuse({inner}, {', '.join(f'{k}={v!r}' for k, v in self.params().items())})"


def fuse(*parts: Stage | Run, method: str = "rrf", weights: Sequence[float] | None = None,
         rrf_k: float = 60, norm: str = "minmax", k: int | None = None) -> Fusion:
    """Fuse stages or runs: ``rk.fuse(bm25 % 100, dense % 100, method="rrf")``."""
    return Fusion(parts, method=method, weights=weights, rrf_k=rrf_k, norm=norm, k=k)


class RunStage(Stage):
    """A fixed run as a stage (e.g. a TREC run file as the first stage)."""

    name = "run"

    def __init__(self, run: Run):
        self.run = run

    def transform(self, queries: Queries, run: Run | None) -> Run:
        return self.run.with_queries(queries)

    def params(self) -> dict[str, Any]:
        return {"run": self.run.name}
