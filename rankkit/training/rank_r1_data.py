"""Rank-R1 training sets: one relevant + sampled negatives per set, shuffled, from qrels and a first-stage run.

Each example is one setwise comparison: a query, ``set_size`` passages in random
positions (one judged relevant, the rest sampled from the first-stage top
``depth`` among the unjudged/non-relevant ones: hard negatives), the graded
relevance of each position (for the reward) and the correct label. Seeded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError


@dataclass
class RankR1Example:
    """One comparison: ``passages`` in prompt order, ``grades`` per position, ``label`` = the best (0-based)."""

    query: str
    passages: list[str]
    grades: list[int]
    label: int
    qid: str | None = None


def examples_from_run(dataset: Any, run: Any, set_size: int = 4, depth: int = 20, per_query: int = 1,
                      seed: int = 0, min_grade: int = 1, qids: Sequence[str] | None = None
                      ) -> tuple[list[RankR1Example], dict[str, int]]:
    """``per_query`` sets per judged query (queries with too few negatives are skipped, counted)."""
    if set_size < 2:
        raise ConfigError(f"set_size must be >= 2, got {set_size}")
    rng = np.random.default_rng(seed)
    corpus = dataset.corpus
    wanted = [q for q in (qids if qids is not None else sorted(dataset.qrels)) if q in dataset.queries]
    counts = {"examples": 0, "skipped_no_relevant": 0, "skipped_few_negatives": 0}
    out: list[RankR1Example] = []
    for qid in wanted:
        judged = dict(dataset.qrels[qid]) if qid in dataset.qrels else {}
        positives = sorted(d for d, g in judged.items() if g >= min_grade and d in corpus)
        if not positives:
            counts["skipped_no_relevant"] += 1
            continue
        pool = [d for d in (run.docids(qid).tolist()[:depth] if qid in run else [])
                if judged.get(d, 0) < min_grade and d in corpus]
        if len(pool) < set_size - 1:
            counts["skipped_few_negatives"] += 1
            continue
        for _ in range(max(1, int(per_query))):
            pos = positives[int(rng.integers(len(positives)))]
            negs = [pool[i] for i in rng.choice(len(pool), size=set_size - 1, replace=False)]
            docs = [pos, *negs]
            perm = rng.permutation(len(docs))
            docs = [docs[i] for i in perm]
            grades = [max(0, int(judged.get(d, 0))) if judged.get(d, 0) >= min_grade else 0 for d in docs]
            out.append(RankR1Example(dataset.queries[qid], [corpus[d] for d in docs], grades,
                                     int(np.argmax(grades)), qid))
    counts["examples"] = len(out)
    return out, counts


def warmup_reasoning(ex: RankR1Example) -> str:
    """The reasoning template of the supervised warm-up: one short sentence (about 21 tokens with the tags),
    so it fits a small ``max_completion_length``; GRPO is free to change it."""
    return f"Document [{ex.label + 1}] best matches the query."


__all__ = ["RankR1Example", "examples_from_run", "warmup_reasoning"]
