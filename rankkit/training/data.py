"""Training examples for rerankers: one query with its candidate list.

A ``Group`` is what the listwise objective consumes: a query text, a few
document texts, their labels (usually 1 positive + N hard negatives) and
optional per-item weights (e.g. inverse propensities from click logs; None
means all ones). Groups come from the registered data sources
(``sources.DATA_SOURCES``), built on these functions:

- a ``Dataset`` (qrels + corpus + queries) with hard negatives mined from
  any first-stage ``Stage`` (BM25, dense, fused) or a fixed ``Run``; labelled
  positives are never used as negatives;
- an MS MARCO-style triples TSV (``query<TAB>positive<TAB>negative``);
- a Hugging Face ``datasets`` dataset with query / positive / negative columns,
  e.g. full MS MARCO: ``load_dataset("sentence-transformers/msmarco-bm25",
  "triplet", split="train")``.

First-stage runs are cached as TREC files keyed by the stage description, the
corpus fingerprint and the query set, so repeated trainings skip retrieval.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataFormatError, RankkitError
from ..types import Dataset, Queries, Run, as_run

log = logging.getLogger(__name__)


@dataclass
class Group:
    """One training list: a query, its candidate texts, their relevance labels and optional weights."""

    query: str
    docs: list[str]
    labels: list[float]
    qid: str | None = None
    weights: list[float] | None = None

    def __post_init__(self) -> None:
        if len(self.docs) != len(self.labels):
            raise RankkitError(f"group {self.qid!r}: {len(self.docs)} documents but {len(self.labels)} labels")
        if self.weights is not None and len(self.weights) != len(self.docs):
            raise RankkitError(f"group {self.qid!r}: {len(self.docs)} documents but {len(self.weights)} weights")

    def head(self, n: int | None) -> Group:
        """The first ``n`` items (all when ``n`` is None)."""
        if not n or n >= len(self.docs):
            return self
        w = self.weights[:n] if self.weights is not None else None
        return Group(self.query, self.docs[:n], self.labels[:n], self.qid, w)


@dataclass
class DataReport:
    """What the builders skipped or patched, so nothing is dropped silently."""

    groups: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, why: str, n: int = 1) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + n

    def warn(self, source: str) -> None:
        for why, n in self.skipped.items():
            log.warning("%s: %d %s", source, n, why)


# ------------------------------------------------------------------ first-stage cache
def _queries_key(queries: Queries) -> str:
    h = hashlib.sha256()
    for q, t in queries.items():
        h.update(f"{q}\x00{t}\x01".encode())
    return h.hexdigest()[:12]


def cached_run(stage: Any, queries: Queries, cache_dir: str | os.PathLike | None = None,
               corpus_fingerprint: str = "", k: int | None = None) -> Run:
    """Run ``stage`` (cut to ``k``) over ``queries``, reusing a cached TREC file when present."""
    from ..pipeline import Stage

    if isinstance(stage, Run):
        return stage.with_queries(queries) if k is None else stage.top(k).with_queries(queries)
    if not isinstance(stage, Stage):
        raise ConfigError(f"negatives come from a Stage or a Run, got {type(stage).__name__}")
    st = stage % k if k else stage
    path = None
    if cache_dir is not None:
        desc = json.dumps(st.describe(), sort_keys=True, default=str)
        key = hashlib.sha256(f"{desc}|{corpus_fingerprint}|{_queries_key(queries)}".encode()).hexdigest()[:16]
        path = Path(cache_dir) / f"run-{key}.trec"
        if path.exists():
            return Run.read_trec(path).with_queries(queries)
    run = as_run(st(queries))
    if path is not None:
        run.write_trec(path, tag="cache")
    return run


# --------------------------------------------------------------------------- splits
def split_queries(qids: Sequence[str], dev_fraction: float = 0.1, seed: int = 0) -> tuple[list[str], list[str]]:
    """Deterministic (train, dev) split of query ids for tuning without touching test."""
    if not 0.0 <= dev_fraction < 1.0:
        raise ConfigError(f"dev_fraction must be in [0, 1), got {dev_fraction}")
    ids = sorted(map(str, qids))
    rng = np.random.default_rng(seed)
    rng.shuffle(ids)
    n_dev = int(round(len(ids) * dev_fraction))
    return sorted(ids[n_dev:]), sorted(ids[:n_dev])


# ---------------------------------------------------------------------- from Dataset
def groups_from_dataset(dataset: Dataset, negatives_from: Any, num_negatives: int = 7,
                        depth: int = 100, repeats: int = 1, seed: int = 0, min_grade: int = 1,
                        qids: Iterable[str] | None = None, cache_dir: str | os.PathLike | None = None,
                        ) -> tuple[list[Group], DataReport]:
    """One group per (query, positive) and repeat: the positive + ``num_negatives`` hard negatives.

    Negatives are sampled from the top ``depth`` of ``negatives_from`` (a Stage
    or Run) minus every document judged relevant (grade >= 1); each repeat
    samples afresh. When the pool is short, random corpus documents fill it
    (counted in the report).
    """
    if num_negatives < 1:
        raise ConfigError(f"num_negatives must be >= 1, got {num_negatives}")
    report = DataReport()
    wanted = [q for q in (qids if qids is not None else dataset.qrels) if q in dataset.qrels]
    missing_q = [q for q in wanted if q not in dataset.queries]
    if missing_q:
        report.skip("judged queries without text", len(missing_q))
    wanted = [q for q in wanted if q in dataset.queries and dataset.queries[q].strip()]
    queries = dataset.queries.subset(wanted)
    run = cached_run(negatives_from, queries, cache_dir, dataset.corpus.fingerprint(), k=depth)
    corpus = dataset.corpus
    rng = np.random.default_rng(seed)
    groups: list[Group] = []
    for _ in range(max(1, int(repeats))):
        for qid in wanted:
            judged = dataset.qrels[qid]
            if any(g < 0 for g in judged.values()):
                report.skip("negative relevance grades (treated as not relevant)")
            positives = [d for d, g in judged.items() if g >= min_grade]
            relevant_any = {d for d, g in judged.items() if g >= 1}
            pool = [d for d in run.docids(qid).tolist() if d not in relevant_any] if qid in run else []
            for pos in positives:
                if pos not in corpus:
                    report.skip("positives not in the corpus")
                    continue
                if not corpus[pos].strip():
                    report.skip("positives with empty text")
                    continue
                negs = _sample(pool, num_negatives, rng)
                if len(negs) < num_negatives:
                    report.skip("negatives filled at random (short first-stage pool)", num_negatives - len(negs))
                    negs += _random_docs(corpus.ids, num_negatives - len(negs), relevant_any | set(negs), rng)
                docs = [corpus[pos], *(corpus[d] for d in negs)]
                grade = float(judged[pos])
                groups.append(Group(queries[qid], docs, [grade] + [0.0] * len(negs), qid=qid))
    report.groups = len(groups)
    return groups, report


def _sample(pool: list[str], n: int, rng: np.random.Generator) -> list[str]:
    if len(pool) <= n:
        return list(pool)
    return [pool[i] for i in sorted(rng.choice(len(pool), size=n, replace=False))]


def _random_docs(ids: list[str], n: int, exclude: set[str], rng: np.random.Generator) -> list[str]:
    out: list[str] = []
    while len(out) < n and len(exclude) + len(out) < len(ids):
        d = ids[int(rng.integers(len(ids)))]
        if d not in exclude and d not in out:
            out.append(d)
    return out


# ---------------------------------------------------------------------- from triples
def groups_from_triples(path: str | os.PathLike, limit: int | None = None) -> tuple[list[Group], DataReport]:
    """One group (positive, negative) per line of an MS MARCO-style triples TSV."""
    from ..datasets import read_triples

    triples = read_triples(path, limit=limit)
    groups = [Group(t.query, [t.positive, t.negative], [1.0, 0.0], qid=f"t{i}") for i, t in enumerate(triples)]
    return groups, DataReport(groups=len(groups))


# ----------------------------------------------------------------------- from datasets
def groups_from_hf(dataset: Any, query_field: str = "query", positive_field: str = "positive",
                   negative_field: str | Sequence[str] = "negative", limit: int | None = None,
                   ) -> tuple[list[Group], DataReport]:
    """Groups from a ``datasets`` dataset with query / positive / negative(s) columns.

    ``negative_field`` may name one column, several, or a column holding lists.
    """
    cols = set(dataset.column_names)
    neg_fields = [negative_field] if isinstance(negative_field, str) else list(negative_field)
    for name in (query_field, positive_field, *neg_fields):
        if name not in cols:
            raise DataFormatError(f"dataset has no column {name!r} (columns: {sorted(cols)})")
    report = DataReport()
    groups: list[Group] = []
    n = len(dataset) if limit is None else min(limit, len(dataset))
    for i in range(n):
        row = dataset[i]
        negs: list[str] = []
        for f in neg_fields:
            v = row[f]
            negs.extend(v if isinstance(v, list) else [v])
        q, p = str(row[query_field] or ""), str(row[positive_field] or "")
        negs = [str(x) for x in negs if x and str(x).strip()]
        if not q.strip() or not p.strip() or not negs:
            report.skip("rows with an empty query, positive or no negative")
            continue
        groups.append(Group(q, [p, *negs], [1.0] + [0.0] * len(negs), qid=f"hf{i}"))
    report.groups = len(groups)
    return groups, report


def check_labels(groups: Sequence[Group], loss: str) -> None:
    """Every group's labels must suit ``loss`` (``losses.check_labels``, the one label check)."""
    from .losses import check_labels as check

    for g in groups:
        check(g.labels, loss, where=f"query {g.qid!r}: ")
