"""BM25 + dense retrieval fused by RRF (top-100) -> cross-encoder top-20 -> rk.Generator.

Needs rk.DenseRetriever (faiss, sentence-transformers; ``dense`` is its model, "minilm"
by default, or ``dense_index`` a saved index folder to skip encoding the corpus) and
a reranker (``reranker`` its model, ``reranker_name`` which one, as in bm25_ce_generate.py).
"""

from __future__ import annotations

from typing import Any

import rankkit as rk
from rankkit import recipes

MEASURES = ["nDCG@10", "R@10", "R@20"]


def build(dataset: rk.Dataset, reranker: str | None = None, reranker_name: str = "cross-encoder",
          dense: str = "minilm", model: str = "smollm2", k: int = 3, depth: int = 100, rerank_depth: int = 20,
          mode: str = "answer", labels: Any = None, prompt: Any = None, max_new_tokens: int = 96,
          batch_size: int = 8, index: str | None = None, dense_index: str | None = None,
          **generator_options: Any) -> rk.Stage:
    dense_cls = recipes.require("DenseRetriever")
    dense_retriever = dense_cls.load(dense_index, corpus=dataset.corpus) if dense_index \
        else dense_cls.build(dataset.corpus, model=dense)
    ce = recipes.reranker(reranker_name, model=reranker, corpus=dataset.corpus)
    bm25 = rk.load_index(index) if index else rk.BM25.build(dataset.corpus)
    generator = rk.Generator(model, corpus=dataset.corpus, k=k, mode=mode, labels=labels,
                             prompt=prompt, max_new_tokens=max_new_tokens, batch_size=batch_size,
                             **generator_options)
    return rk.fuse(bm25 % depth, dense_retriever % depth) % depth >> ce % rerank_depth >> generator
