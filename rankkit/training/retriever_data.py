"""Training data for dense retrievers: (query, positive) examples and their hard negatives.

An :class:`Example` is one judged (query, positive document) pair; the hard
negatives of every example live in a :class:`NegativeTable`, apart from the
examples, so dynamic mining (ADORE) can swap them while training runs.
Negatives are mined from a ranking of the corpus (:func:`mine_negatives`):
BM25 or the bi-encoder itself (STAR's static negatives, or ADORE's re-mined
ones), never a judged-relevant document, never a text identical to the
positive, and, with a :class:`FalseNegativeGuard`, never one a teacher
cross-encoder scores above the positive ("Hard Negatives or False
Negatives", Zhou et al. 2022). Everything dropped is counted.

Hand-written because no library does it for a BM25 ranking with counted
drops: sentence-transformers' ``mine_hard_negatives`` mines with the model
only and reports no per-reason counts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..types import Dataset
from .data import DataReport

log = logging.getLogger(__name__)

#: a teacher scores aligned (query text, document text) pairs; higher = more relevant
Teacher = Callable[[list[str], list[str]], np.ndarray]


@dataclass(frozen=True)
class Example:
    """One judged (query, positive document) pair; its negatives are in the :class:`NegativeTable`."""

    qid: str
    query: str
    positive: str  # docid


def build_examples(dataset: Dataset, qids: Sequence[str] | None = None, min_grade: int = 1,
                   ) -> tuple[list[Example], DataReport]:
    """One example per (query, judged positive); queries without one are skipped and counted."""
    report = DataReport()
    wanted = list(qids) if qids is not None else list(dataset.qrels)
    examples: list[Example] = []
    for qid in wanted:
        judged = dataset.qrels[qid] if qid in dataset.qrels else {}
        text = dataset.queries[qid] if qid in dataset.queries else ""
        if not text.strip():
            report.skip("queries without text")
            continue
        positives = [d for d, g in judged.items() if g >= min_grade]
        if not positives:
            report.skip("queries with no positive")
            continue
        for doc in dict.fromkeys(positives):  # the same pair twice would be one example twice
            if doc not in dataset.corpus or not dataset.corpus[doc].strip():
                report.skip("positives missing from the corpus or empty")
                continue
            examples.append(Example(str(qid), text, doc))
    report.groups = len(examples)
    return examples, report


class NegativeTable:
    """The current hard negatives (docids) of every example, with the history of each mining round."""

    def __init__(self, num_examples: int):
        self.negatives: list[list[str]] = [[] for _ in range(num_examples)]
        self.rounds: list[dict[str, Any]] = []

    def update(self, negatives: list[list[str]], info: dict[str, Any]) -> None:
        if len(negatives) != len(self.negatives):
            raise ConfigError(f"{len(negatives)} negative lists for {len(self.negatives)} examples")
        old = self.negatives
        changed = sum(set(a) != set(b) for a, b in zip(old, negatives))
        self.negatives = [list(n) for n in negatives]
        self.rounds.append({**info, "changed_examples": int(changed) if self.rounds else None})


class FalseNegativeGuard:
    """Drops mined negatives that a teacher cross-encoder scores above the positive (minus ``margin``).

    ``teacher`` is a :class:`~rankkit.CrossEncoder` (anything with
    ``predict(queries, docs)``) or a plain function of the two text lists.
    Scores are cached per (qid, docid), so re-mining rounds score only new pairs.
    """

    def __init__(self, teacher: Any, margin: float = 0.0, name: str | None = None):
        self.score = teacher.predict if hasattr(teacher, "predict") else teacher
        self.name = name or getattr(teacher, "model_name", None)
        if not callable(self.score):
            raise ConfigError("the false-negative teacher must be a cross-encoder or a function "
                              "(queries, docs) -> scores")
        self.margin = float(margin)
        self.cache: dict[tuple[str, str], float] = {}
        self.dropped_total = 0

    def keep(self, examples: Sequence[Example], candidates: Sequence[list[str]],
             text: Callable[[str], str]) -> tuple[list[list[str]], int]:
        """``candidates`` per example without the false negatives; and how many were dropped."""
        todo: dict[tuple[str, str], str] = {}
        for ex, cands in zip(examples, candidates):
            for doc in (ex.positive, *cands):
                if (ex.qid, doc) not in self.cache:
                    todo[(ex.qid, doc)] = ex.query
        if todo:
            keys = list(todo)
            scores = np.asarray(self.score([todo[k] for k in keys], [text(d) for _, d in keys]),
                                dtype=np.float64).reshape(-1)
            if len(scores) != len(keys):
                raise ConfigError(f"the teacher returned {len(scores)} scores for {len(keys)} pairs")
            self.cache.update(zip(keys, scores.tolist()))
        kept, dropped = [], 0
        for ex, cands in zip(examples, candidates):
            bar = self.cache[(ex.qid, ex.positive)] - self.margin
            ok = [d for d in cands if self.cache[(ex.qid, d)] <= bar]
            dropped += len(cands) - len(ok)
            kept.append(ok)
        self.dropped_total += dropped
        return kept, dropped


def mine_negatives(examples: Sequence[Example], ranking: dict[str, list[str]], dataset: Dataset,
                   num_negatives: int, depth: int = 50, skip_top: int = 0, seed: int = 0,
                   guard: FalseNegativeGuard | None = None, oversample: int = 2,
                   ) -> tuple[list[list[str]], dict[str, int]]:
    """``num_negatives`` hard negatives per example, sampled from ranks ``skip_top..depth`` of ``ranking``.

    Judged-relevant documents of the query and texts identical to the positive
    are never negatives. With a ``guard``, ``oversample * num_negatives``
    candidates are checked by the teacher and the first survivors kept. Short
    pools are filled with random corpus documents. Returns the negatives and
    counts of everything dropped or filled.
    """
    if num_negatives < 1:
        raise ConfigError(f"num_negatives must be >= 1, got {num_negatives}")
    if depth <= skip_top:
        raise ConfigError(f"depth ({depth}) must exceed skip_top ({skip_top})")
    rng = np.random.default_rng(seed)
    corpus = dataset.corpus
    counts = {"identical_to_positive": 0, "false_negatives": 0, "random_fill": 0, "examples": len(examples)}
    want = num_negatives * (max(1, oversample) if guard is not None else 1)
    candidates: list[list[str]] = []
    for ex in examples:
        relevant = {d for d, g in dataset.qrels[ex.qid].items() if g >= 1} if ex.qid in dataset.qrels \
            else set()
        relevant.add(ex.positive)
        pos_text = corpus[ex.positive].strip()
        pool = []
        for d in ranking.get(ex.qid, [])[skip_top:depth]:
            if d in relevant or d not in corpus:
                continue
            if corpus[d].strip() == pos_text:
                counts["identical_to_positive"] += 1
                continue
            pool.append(d)
        if len(pool) > want:
            pool = [pool[i] for i in sorted(rng.choice(len(pool), size=want, replace=False))]
        candidates.append(pool)
    if guard is not None:
        candidates, dropped = guard.keep(examples, candidates, corpus.__getitem__)
        counts["false_negatives"] = dropped
    out: list[list[str]] = []
    ids = corpus.ids
    for ex, cands in zip(examples, candidates):
        negs = cands[:num_negatives]
        exclude = set(dataset.qrels[ex.qid]) if ex.qid in dataset.qrels else set()
        exclude |= {ex.positive, *negs}
        tries = 0
        while len(negs) < num_negatives and tries < 50 * num_negatives and len(exclude) < len(ids):
            tries += 1
            d = ids[int(rng.integers(len(ids)))]
            if d not in exclude and corpus[d].strip() != corpus[ex.positive].strip():
                negs.append(d)
                exclude.add(d)
                counts["random_fill"] += 1
        if len(negs) < num_negatives:
            raise ConfigError(f"query {ex.qid!r}: the corpus has too few documents for "
                              f"{num_negatives} negatives")
        out.append(negs)
    return out, counts


# ------------------------------------------------------------------------ rankings
def rank_with_stage(stage: Any, dataset: Dataset, qids: Sequence[str], depth: int,
                    cache_dir: Any = None) -> dict[str, list[str]]:
    """Top ``depth`` docids per query from a first stage (BM25, an index) or a Run."""
    from .data import cached_run

    queries = dataset.queries.subset(list(dict.fromkeys(qids)))
    run = cached_run(stage, queries, cache_dir, dataset.corpus.fingerprint(), k=depth)
    return {q: run.docids(q).tolist() for q in queries.ids if q in run}


def encode_texts(model: Any, texts: list[str], kind: str, batch_size: int = 32,
                 show_progress: bool = False) -> np.ndarray:
    """Vectors of ``texts`` from a SentenceTransformer, unit length for cosine models (for faiss IP)."""
    fn = model.encode_query if kind == "query" else model.encode_document
    cosine = str(model.similarity_fn_name) == "cosine"
    out = fn(texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=cosine,
             show_progress_bar=show_progress)
    return np.ascontiguousarray(out, dtype=np.float32)


def rank_with_model(model: Any, dataset: Dataset, qids: Sequence[str], depth: int,
                    batch_size: int = 32, show_progress: bool = False) -> dict[str, list[str]]:
    """Top ``depth`` docids per query from the bi-encoder ``model`` itself (a full corpus encode).

    The model is put in eval mode for the encode and its previous mode restored
    (dynamic mining calls this between training steps).
    """
    from ..retrievers.faiss_index import exact_index

    was_training = model.training
    model.eval()
    try:
        qids = list(dict.fromkeys(qids))
        docs = encode_texts(model, dataset.corpus.contents, "document", batch_size, show_progress)
        queries = encode_texts(model, [dataset.queries[q] for q in qids], "query", batch_size, False)
    finally:
        model.train(was_training)
    _, labels = exact_index(docs).search(queries, min(depth, len(docs)))
    ids = np.asarray(dataset.corpus.ids, dtype=object)
    return {q: ids[row[row >= 0]].tolist() for q, row in zip(qids, labels)}
