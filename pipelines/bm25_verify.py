"""BM25 top-100 -> claim verification: each claim's label scored by the LLM's likelihood.

Labels default to SciFact's (SUPPORT / CONTRADICT / NOT_ENOUGH_INFO); ``rankkit run``
scores them against the dataset folder's ``claims.jsonl``.
"""

from __future__ import annotations

from typing import Any

import rankkit as rk
from rankkit.recipes import SCIFACT_LABELS

MEASURES = ["nDCG@10", "R@10", "R@100"]


def build(dataset: rk.Dataset, model: str = "smollm2", k: int = 3, depth: int = 100,
          labels: Any = None, prompt: Any = "verify", batch_size: int = 8,
          index: str | None = None, **generator_options: Any) -> rk.Stage:
    bm25 = rk.load_index(index) if index else rk.BM25.build(dataset.corpus)
    generator = rk.Generator(model, corpus=dataset.corpus, k=k, mode="classify",
                             labels=labels or SCIFACT_LABELS, prompt=prompt,
                             batch_size=batch_size, **generator_options)
    return bm25 % depth >> generator
