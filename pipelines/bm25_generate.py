"""BM25 top-100 -> rk.Generator answering from the top k passages, citing them as [n]."""

from __future__ import annotations

from typing import Any

import rankkit as rk

MEASURES = ["nDCG@10", "R@10", "R@100"]


def build(dataset: rk.Dataset, model: str = "smollm2", k: int = 3, depth: int = 100,
          mode: str = "answer", labels: Any = None, prompt: Any = None, max_new_tokens: int = 96,
          batch_size: int = 8, index: str | None = None, **generator_options: Any) -> rk.Stage:
    bm25 = rk.load_index(index) if index else rk.BM25.build(dataset.corpus)
    generator = rk.Generator(model, corpus=dataset.corpus, k=k, mode=mode, labels=labels,
                             prompt=prompt, max_new_tokens=max_new_tokens, batch_size=batch_size,
                             **generator_options)
    return bm25 % depth >> generator
