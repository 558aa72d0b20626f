"""Cross-encoder kNN search by CUR decomposition (ANNCUR) and its adaptive variant (adaCUR).

Retrieves with the cross-encoder itself, no dual encoder (Yadav et al., 2022):

>>> cur = CURRetriever.build(corpus, rk.CrossEncoder("minilm-scifact"),
...                          anchor_queries=train_queries, k_i=50, k_r=50)
>>> cur.save("idx/cur"); cur = CURRetriever.load("idx/cur", cross_encoder=ce, corpus=corpus)
>>> run = (cur % 10)(queries)                 # a Retriever stage: pipelines, fusion

Offline, ``R`` holds exact scores of anchor queries against every item (read
from / written to a :class:`~rankkit.rerankers.score_cache.ScoreCache` when
``cache=`` is given, so benchmarks reuse ground-truth rows). At query time each
query is scored exactly against ``k_i`` anchor items (one batched cross-encoder
call for all queries), every item's score is approximated as
``q_anchor @ pinv(R[:, anchors]) @ R`` (one matrix product for the batch), and
the best ``k_r`` unscored items are scored exactly (one more call). The output
ranks every exactly scored item (anchors included) by its exact score.
``rounds > 1`` is adaCUR: the ``k_i`` budget is spent in rounds, each adding
the current approximation's best unscored items to that query's anchors (per
query pseudo-inverses, batched). Calls per query never exceed ``k_i + k_r``.

An index folder holds ``rankkit.json`` (kind ``"cur"``: cross-encoder and
corpus fingerprints, budgets, condition number of the anchor intersection),
``R.npy`` (float16 or float32, memory-mapped on load), ``items.npy`` (the
seeded item order whose head is the fixed anchor set) and
``anchor_queries.json``.
"""

from __future__ import annotations

import copy
import json
import logging
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataFormatError, RankkitError
from ..folders import MANIFEST, require_manifest, write_manifest
from ..io import PathLike, atomic_dir
from ..pipeline import Retriever, Stage
from ..types import Corpus, Queries, Run, as_run
from .cur_math import (
    DEFAULT_RIDGE,
    PinvReport,
    approximate_scores,
    regularised_weights,
    top_unscored,
)

log = logging.getLogger(__name__)

FORMAT = 1
ANCHOR_MODES = ("random", "first-stage")
DTYPES = ("float16", "float32")
#: queries per approximation block (bounds the (queries x anchor queries x anchors) stack)
_APPROX_CHUNK = 256

ScoreFn = Callable[[Sequence[str], Sequence[str]], np.ndarray]


def _anchor_texts(anchor_queries: Any) -> list[str]:
    if isinstance(anchor_queries, str):
        raise ConfigError("anchor_queries must be several queries (a list, mapping or Queries), not one string")
    if isinstance(anchor_queries, (Queries, Mapping)):
        texts = [str(v) for v in anchor_queries.values()]
    else:
        texts = [str(t) for t in (anchor_queries or [])]
    return list(dict.fromkeys(t for t in texts if t.strip()))


def _check_budget(k_i: int, k_r: int, rounds: int, n_anchor_items: int | None, mode: str) -> None:
    for name, v, low in (("k_i", k_i, 1), ("k_r", k_r, 0), ("rounds", rounds, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ConfigError(f"CUR: {name} must be an integer >= {low}, got {v!r}")
    if rounds > k_i:
        raise ConfigError(f"CUR: {rounds} adaptive rounds need at least one anchor item each, "
                          f"but the anchor budget k_i is {k_i}")
    first = -(-k_i // rounds)  # size of round 0 (np.array_split puts the remainder first)
    if mode == "random" and n_anchor_items is not None and first > n_anchor_items:
        raise ConfigError(f"CUR: the first round scores {first} anchor items but the index holds "
                          f"only {n_anchor_items} (n_anchor_items); lower k_i or raise rounds")


class CURRetriever(Retriever):
    """Cross-encoder retrieval through a CUR approximation of its score matrix."""

    name = "cur"
    default_k = 1000

    def __init__(self, r: np.ndarray, items: np.ndarray, corpus: Corpus, cross_encoder: Any,
                 config: dict[str, Any], k_i: int, k_r: int, rounds: int = 1,
                 first_stage: Stage | Run | None = None, ridge: float = DEFAULT_RIDGE,
                 score_fn: ScoreFn | None = None):
        self.r = r
        self.items = np.asarray(items, dtype=np.int64)
        self.corpus = corpus
        self.cross_encoder = cross_encoder
        self.config = config
        self.anchor_mode = config["anchor_items"]
        self.n_anchor_items = int(config["n_anchor_items"])
        _check_budget(k_i, k_r, rounds, self.n_anchor_items, self.anchor_mode)
        if self.anchor_mode == "first-stage" and first_stage is None:
            raise ConfigError("CUR: anchor_items='first-stage' needs first_stage= (a retriever stage or a Run)")
        self.k_i, self.k_r, self.rounds = int(k_i), int(k_r), int(rounds)
        self.first_stage = first_stage
        self.ridge = float(ridge)
        self.score_fn = score_fn
        self.stats: dict[str, Any] = {}

    # build -----------------------------------------------------------------------
    @classmethod
    def build(cls, corpus: Any, cross_encoder: Any, anchor_queries: Any, n_anchor_queries: int | None = None,
              n_anchor_items: int | None = None, k_i: int = 50, k_r: int = 50, rounds: int = 1,
              budget: int | None = None, anchor_items: str = "random",
              first_stage: Stage | Run | None = None, dtype: str = "float32",
              cache: PathLike | None = None, ridge: float = DEFAULT_RIDGE, seed: int = 0,
              show_progress: bool = False) -> CURRetriever:
        """Score the anchor queries against every item and index the result.

        ``budget`` (optional) sets ``k_r = budget - k_i``. ``n_anchor_items``
        (default ``k_i``): size of the fixed random anchor set. ``cache``: a
        ScoreCache folder holding / receiving the rows of ``R``.
        """
        corpus = Corpus.coerce(corpus)
        if len(corpus) == 0:
            raise ConfigError("cannot index an empty corpus")
        if anchor_items not in ANCHOR_MODES:
            raise ConfigError(f"CUR: anchor_items must be one of {', '.join(ANCHOR_MODES)}, got {anchor_items!r}")
        if dtype not in DTYPES:
            raise ConfigError(f"CUR: dtype must be float16 or float32, got {dtype!r}")
        if budget is not None:
            if budget < k_i:
                raise ConfigError(f"CUR: a budget of {budget} calls per query is smaller than the "
                                  f"k_i={k_i} anchor items it must score")
            k_r = int(budget) - int(k_i)
        n_items = len(corpus)
        n_anchor_items = int(min(n_anchor_items if n_anchor_items is not None else k_i, n_items))
        _check_budget(k_i, k_r, rounds, n_anchor_items, anchor_items)
        texts = _anchor_texts(anchor_queries)
        if n_anchor_queries is not None:
            if len(texts) < n_anchor_queries:
                warnings.warn(f"CUR: {n_anchor_queries} anchor queries requested but only {len(texts)} "
                              f"distinct ones given; using {len(texts)}", stacklevel=2)
            texts = texts[:n_anchor_queries]
        if not texts:
            raise ConfigError("CUR: no anchor queries (pass anchor_queries=, e.g. training queries)")
        t0 = time.perf_counter()
        r = score_matrix(cross_encoder, corpus, texts, cache, show_progress)
        seconds = time.perf_counter() - t0
        scale = max(1.0, float(np.abs(r).max()))
        if not np.isfinite(r).all():
            raise RankkitError("CUR: the cross-encoder returned non-finite scores for anchor pairs")
        if float(np.ptp(r)) <= 1e-6 * scale:
            raise ConfigError(f"CUR: the cross-encoder gives all {r.size} (anchor query, item) pairs the "
                              f"same score {float(r.flat[0]):.4g}; it cannot rank, so CUR cannot approximate it")
        items = np.random.default_rng(seed).permutation(n_items).astype(np.int32)
        r_stored = r.astype(dtype)
        _, report = regularised_weights(np.zeros((1, n_anchor_items)),
                                        r_stored[:, np.sort(items[:n_anchor_items])].astype(np.float32), ridge)
        if report.condition_number > 1e4:
            log.info("CUR: anchor intersection matrix is ill-conditioned (condition number %.3g); "
                     "ridge %.1g regularises it", report.condition_number, ridge)
        config = {"model": getattr(cross_encoder, "model_name", type(cross_encoder).__name__),
                  "model_fingerprint": cross_encoder.fingerprint(),
                  "corpus_fingerprint": corpus.fingerprint(), "num_docs": n_items,
                  "n_anchor_queries": len(texts), "n_anchor_items": n_anchor_items,
                  "anchor_items": anchor_items, "k_i": int(k_i), "k_r": int(k_r), "rounds": int(rounds),
                  "dtype": dtype, "ridge": float(ridge), "seed": int(seed),
                  "condition_number": report.condition_number, "anchor_rank": report.min_rank,
                  "index_calls": len(texts) * n_items, "index_seconds": round(seconds, 3),
                  "r_bytes": int(r_stored.nbytes)}
        out = cls(r_stored, items, corpus, cross_encoder, config, k_i, k_r, rounds, first_stage, ridge)
        out._anchor_query_texts = texts
        return out

    # query-time settings ---------------------------------------------------------
    def with_budget(self, k_i: int | None = None, k_r: int | None = None, rounds: int | None = None,
                    budget: int | None = None, first_stage: Stage | Run | None = None) -> CURRetriever:
        """A copy with other query-time budgets (same R: no re-indexing)."""
        clone = copy.copy(self)
        k_i = self.k_i if k_i is None else int(k_i)
        if budget is not None:
            if budget < k_i:
                raise ConfigError(f"CUR: a budget of {budget} calls per query is smaller than the "
                                  f"k_i={k_i} anchor items it must score")
            k_r = budget - k_i
        k_r = self.k_r if k_r is None else int(k_r)
        rounds = self.rounds if rounds is None else int(rounds)
        _check_budget(k_i, k_r, rounds, self.n_anchor_items, self.anchor_mode)
        clone.k_i, clone.k_r, clone.rounds = k_i, k_r, rounds
        if first_stage is not None:
            clone.first_stage = first_stage
        clone.stats = {}
        return clone

    def with_scorer(self, score_fn: ScoreFn) -> CURRetriever:
        """A copy whose exact scores come from ``score_fn(queries, docs)`` (e.g. cached rows)."""
        clone = copy.copy(self)
        clone.score_fn = score_fn
        clone.stats = {}
        return clone

    @property
    def budget(self) -> int:
        return min(self.k_i + self.k_r, len(self.corpus))

    # save / load ---------------------------------------------------------------------
    def save(self, folder: PathLike) -> Path:
        """Write the index folder atomically (a crash leaves no half-written index)."""
        with atomic_dir(folder) as tmp:
            np.save(tmp / "R.npy", np.asarray(self.r))
            np.save(tmp / "items.npy", self.items.astype(np.int32))
            (tmp / "anchor_queries.json").write_text(
                json.dumps(getattr(self, "_anchor_query_texts", [])), encoding="utf-8")
            write_manifest(tmp, {"kind": "cur", "format": FORMAT, **self.config,
                                 "search": {"k_i": self.k_i, "k_r": self.k_r, "rounds": self.rounds},
                                 "files": {"R": "R.npy", "items": "items.npy",
                                           "anchor_queries": "anchor_queries.json"},
                                 "created": time.strftime("%Y-%m-%dT%H:%M:%S")})
        return Path(folder)

    @classmethod
    def load(cls, folder: PathLike, cross_encoder: Any = None, corpus: Any = None,
             first_stage: Stage | Run | None = None, **search: Any) -> CURRetriever:
        """Load an index saved by :meth:`save`; ``cross_encoder`` and ``corpus`` must be the ones it was built from.

        ``cross_encoder`` defaults to the model named in the manifest (loaded as
        :class:`~rankkit.rerankers.cross_encoder.CrossEncoder`, fingerprint checked).
        ``search`` overrides ``k_i``, ``k_r`` or ``rounds``. ``R`` is memory-mapped.
        """
        folder = Path(folder)
        manifest = require_manifest(folder, kind="cur")
        if manifest.get("format") != FORMAT:
            raise DataFormatError(f"unsupported CUR index format {manifest.get('format')!r}", folder / MANIFEST)
        if corpus is None:
            raise ConfigError(f"{folder}: a CUR index scores document texts at query time: pass corpus= "
                              "(the corpus it was built from)")
        corpus = Corpus.coerce(corpus)
        if cross_encoder is None:
            from ..rerankers.cross_encoder import CrossEncoder

            cross_encoder = CrossEncoder(manifest["model"], show_progress=False)
        if corpus.fingerprint() != manifest.get("corpus_fingerprint"):
            raise ConfigError(
                f"{folder}: the CUR index was built from another corpus ({manifest.get('num_docs')} documents, "
                f"fingerprint {manifest.get('corpus_fingerprint')}) than the one given ({len(corpus)} documents, "
                f"fingerprint {corpus.fingerprint()}); the corpus changed since indexing: rebuild the index")
        fp = cross_encoder.fingerprint()
        if fp != manifest.get("model_fingerprint"):
            raise ConfigError(
                f"{folder}: the CUR index holds scores of cross-encoder {manifest.get('model')!r} (fingerprint "
                f"{manifest.get('model_fingerprint')}), but the one given has fingerprint {fp}; "
                "rebuild the index or load it with the model it was built with")
        files = manifest.get("files", {})
        try:
            r = np.load(folder / files.get("R", "R.npy"), mmap_mode="r")
            items = np.load(folder / files.get("items", "items.npy"))
        except (OSError, ValueError) as e:
            raise DataFormatError(f"cannot read the CUR matrices ({e})", folder) from e
        n = manifest["num_docs"]
        if r.shape != (manifest["n_anchor_queries"], n) or items.shape != (n,):
            raise DataFormatError(f"CUR index files disagree: R {r.shape}, items {items.shape}, "
                                  f"manifest {manifest['n_anchor_queries']} x {n}", folder)
        config = {k: v for k, v in manifest.items() if k not in ("kind", "format", "search", "files", "created")}
        opts = {**manifest.get("search", {}), **search}
        unknown = set(opts) - {"k_i", "k_r", "rounds"}
        if unknown:
            raise ConfigError(f"CUR.load: unknown search option(s) {', '.join(sorted(unknown))} "
                              "(known: k_i, k_r, rounds)")
        out = cls(r, items, corpus, cross_encoder, config, first_stage=first_stage,
                  ridge=manifest.get("ridge", DEFAULT_RIDGE), **opts)
        aq = folder / files.get("anchor_queries", "anchor_queries.json")
        out._anchor_query_texts = json.loads(aq.read_text(encoding="utf-8")) if aq.exists() else []
        return out

    # search ---------------------------------------------------------------------------
    def _score(self, texts: list[str], cols: np.ndarray, exact: np.ndarray, scored: np.ndarray,
               calls: np.ndarray) -> None:
        """One batched cross-encoder call over every (query, column) pair with column >= 0."""
        qi, ci = np.nonzero(cols >= 0)
        if not len(qi):
            return
        items = cols[qi, ci]
        fresh = ~scored[qi, items]
        qi, items = qi[fresh], items[fresh]
        fn = self.score_fn or self.cross_encoder.predict
        docs = self.corpus.contents
        s = np.asarray(fn([texts[i] for i in qi.tolist()], [docs[j] for j in items.tolist()]), dtype=np.float32)
        if s.shape != (len(qi),):
            raise RankkitError(f"CUR: the scorer returned {s.shape} scores for {len(qi)} pairs")
        exact[qi, items] = s
        scored[qi, items] = True
        np.add.at(calls, qi, 1)
        self.stats["predict_calls"] = self.stats.get("predict_calls", 0) + 1
        if calls.max(initial=0) > self.budget:  # a bug, never a user error: fail loudly
            raise RankkitError(f"CUR: {int(calls.max())} cross-encoder calls for one query exceed the budget {self.budget}")

    def _first_anchors(self, queries: Queries, n: int) -> np.ndarray:
        """Round-0 anchor columns ``(b, n)``: the fixed random set, or each query's first-stage top ``n``."""
        b = len(queries)
        if self.anchor_mode == "random":
            return np.tile(np.sort(self.items[:n]), (b, 1))
        fs = self.first_stage
        run = fs if isinstance(fs, Run) else as_run((fs % n)(queries) if isinstance(fs, Retriever) else fs(queries))
        col = {d: i for i, d in enumerate(self.corpus.ids)}
        out = np.empty((b, n), dtype=np.int64)
        for row, qid in enumerate(queries.ids):
            docids = run.docids(qid).tolist() if qid in run else []
            chosen = list(dict.fromkeys(col[d] for d in list(docids)[:n] if d in col))
            if len(chosen) < n:  # pad from the seeded item order
                have = set(chosen)
                chosen += [int(j) for j in self.items[:n + len(chosen)] if int(j) not in have][:n - len(chosen)]
            out[row] = chosen[:n]
        return out

    def _approximate(self, exact: np.ndarray, anchors: np.ndarray, shared: bool) -> tuple[np.ndarray, PinvReport]:
        """Approximate scores of all items ``(b, n_items)`` from each query's anchor columns."""
        r = self.r
        if shared:  # one intersection matrix for the batch (ANNCUR with fixed anchors)
            q = exact[np.arange(len(anchors))[:, None], anchors]
            return approximate_scores(q, np.asarray(r[:, anchors[0]], dtype=np.float32), r, self.ridge)
        parts, reports = [], []
        for c0 in range(0, len(anchors), _APPROX_CHUNK):
            a = anchors[c0:c0 + _APPROX_CHUNK]
            q = exact[c0:c0 + len(a)][np.arange(len(a))[:, None], a]
            c = np.asarray(r[:, a], dtype=np.float32).transpose(1, 0, 2)  # (b, n_aq, m)
            approx, rep = approximate_scores(q, c, r, self.ridge)
            parts.append(approx)
            reports.append(rep)
        return np.concatenate(parts), PinvReport(max(x.condition_number for x in reports), self.ridge,
                                                 min(x.min_rank for x in reports))

    def retrieve(self, queries: Queries, k: int) -> Run:
        queries = Queries.coerce(queries)
        if not len(queries):
            return Run(name=self.name)
        texts, b, n_items = queries.texts, len(queries), len(self.corpus)
        k_i = min(self.k_i, n_items)
        k_r = min(self.k_r, n_items - k_i)
        sizes = [len(s) for s in np.array_split(np.arange(k_i), min(self.rounds, k_i))]
        exact = np.zeros((b, n_items), dtype=np.float32)
        scored = np.zeros((b, n_items), dtype=bool)
        calls = np.zeros(b, dtype=np.int64)
        self.stats.clear()  # in place: copies made by ``% k`` share it with their source
        self.stats.update({"queries": b, "budget": self.budget, "k_i": k_i, "k_r": k_r, "rounds": len(sizes),
                      "anchor_items": self.anchor_mode, "predict_calls": 0})
        t0 = time.perf_counter()
        anchors = self._first_anchors(queries, sizes[0])
        self._score(texts, anchors, exact, scored, calls)
        shared = self.anchor_mode == "random"
        report = None
        for size in sizes[1:]:  # adaCUR: grow each query's anchors from its own approximation
            approx, report = self._approximate(exact, anchors, shared)
            new = top_unscored(approx, scored, size)
            self._score(texts, new, exact, scored, calls)
            anchors = np.concatenate([anchors, np.where(new >= 0, new, anchors[:, :1])], axis=1)
            shared = False
        if k_r:
            approx, report = self._approximate(exact, anchors, shared)
            self._score(texts, top_unscored(approx, scored, k_r), exact, scored, calls)
        elif report is None:
            _, report = self._approximate(exact, anchors, shared)
        k = min(int(k), n_items)
        rankings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        ids = np.asarray(self.corpus.ids, dtype=object)
        for row, qid in enumerate(queries.ids):
            cols = np.flatnonzero(scored[row])
            order = np.argsort(-exact[row, cols], kind="stable")[:k]
            rankings[qid] = (ids[cols[order]], exact[row, cols[order]].astype(np.float64))
        self.stats.update({"calls": int(calls.sum()), "max_calls_per_query": int(calls.max(initial=0)),
                           "calls_per_query": dict(zip(queries.ids, calls.tolist())),
                           "condition_number": report.condition_number, "ridge": report.ridge,
                           "min_anchor_rank": report.min_rank,
                           "seconds": round(time.perf_counter() - t0, 3)})
        return Run.from_sorted(rankings, name=self.name)

    def params(self) -> dict[str, Any]:
        p: dict[str, Any] = {"model": self.config.get("model"), "k_i": self.k_i, "k_r": self.k_r,
                             "rounds": self.rounds, "anchor_items": self.anchor_mode,
                             "anchor_queries": self.config.get("n_anchor_queries")}
        if self.k:
            p["k"] = self.k
        return p


def score_matrix(cross_encoder: Any, corpus: Corpus, texts: list[str], cache: PathLike | None,
                 show_progress: bool = False) -> np.ndarray:
    """Exact scores ``(len(texts), len(corpus))``: from a ScoreCache folder when given, else one predict call."""
    if cache is not None:
        from ..rerankers.score_cache import ScoreCache

        sc = ScoreCache(cache, cross_encoder.fingerprint(), corpus.ids, corpus.contents, cross_encoder.predict)
        return sc.matrix(texts, show_progress=show_progress)
    docs = corpus.contents
    s = np.asarray(cross_encoder.predict([t for t in texts for _ in docs], docs * len(texts)), dtype=np.float32)
    return s.reshape(len(texts), len(docs))
