"""BM25 top-100 -> cross-encoder (rk.CrossEncoder) top-20 -> rk.Generator over the top k.

``reranker`` is the reranker's model: any Hugging Face cross-encoder folder or id, or a
rankkit-trained one; by default the project's own trained reranker ("minilm-scifact").
``reranker_name`` picks another registered reranker (``rk.RERANKERS``, or "module:Class").
"""

from __future__ import annotations

from typing import Any

import rankkit as rk
from rankkit import recipes

MEASURES = ["nDCG@10", "R@10", "R@20"]


def build(dataset: rk.Dataset, reranker: str | None = None, reranker_name: str = "cross-encoder",
          model: str = "smollm2", k: int = 3, depth: int = 100, rerank_depth: int = 20, mode: str = "answer", labels: Any = None,
          prompt: Any = None, max_new_tokens: int = 96, batch_size: int = 8,
          index: str | None = None, **generator_options: Any) -> rk.Stage:
    ce = recipes.reranker(reranker_name, model=reranker, corpus=dataset.corpus)
    bm25 = rk.load_index(index) if index else rk.BM25.build(dataset.corpus)
    generator = rk.Generator(model, corpus=dataset.corpus, k=k, mode=mode, labels=labels,
                             prompt=prompt, max_new_tokens=max_new_tokens, batch_size=batch_size,
                             **generator_options)
    return bm25 % depth >> ce % rerank_depth >> generator
