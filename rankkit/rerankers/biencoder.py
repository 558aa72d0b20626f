"""Bi-encoder reranking: score candidates by query-document inner product.

Built on a :class:`~rankkit.retrievers.dense.DenseRetriever`, it reuses the
index's stored document vectors (no document is re-encoded) and only encodes
the queries, all in one batch; its scores equal the dense retriever's scores
for the same documents. Built on a model name instead, it encodes each
distinct candidate document once per call, from ``corpus``.

>>> pipe = bm25 % 100 >> rk.BiEncoderReranker(dense)      # or dense.as_reranker()
>>> pipe = bm25 % 100 >> rk.BiEncoderReranker("minilm", corpus=corpus)

Registered as ``"bi-encoder"`` (``rankkit rerank --reranker bi-encoder --model minilm``).
This module never imports ``retrievers.dense``: an index with stored vectors is
recognised by what it offers (:func:`stores_vectors`), so the dependency runs one
way only (``dense.as_reranker`` builds this class; this class does not know dense).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError, RankkitError
from ..types import Corpus
from .base import Reranker

#: candidate rows scored per block (bounds the gathered (rows x dim) arrays)
_BLOCK = 65536


def stores_vectors(index: Any) -> bool:
    """Whether ``index`` is a dense index with stored document vectors (a ``DenseRetriever``).

    Checked on the class (``embeddings`` is a property that fails when no vectors are stored).
    """
    return all(callable(getattr(type(index), a, None)) for a in ("rows", "encode_queries")) \
        and hasattr(type(index), "embeddings")


class BiEncoderReranker(Reranker):
    """Rescore candidates with a bi-encoder; stored vectors come from a dense index."""

    name = "biencoder"

    def __init__(self, model: Any = "minilm", corpus: Any = None, batch_size: int = 32,
                 query_prefix: str | None = None, doc_prefix: str | None = None,
                 show_progress: bool = False, device: str | None = None):
        from ..retrievers.encoder import SentenceEncoder

        self.dense: Any = None
        if stores_vectors(model):
            self.dense = model
            self.encoder = model.encoder
            self.embeddings = model.embeddings  # fails now, not mid-pipeline, if none are stored
        elif isinstance(model, SentenceEncoder):
            self.encoder = model
        else:
            self.encoder = SentenceEncoder(model, query_prefix=query_prefix, doc_prefix=doc_prefix,
                                           batch_size=batch_size, device=device,
                                           show_progress=show_progress)
        self.corpus = Corpus.coerce(corpus) if corpus is not None else (
            self.dense.corpus if self.dense is not None else None)
        if self.dense is None and self.corpus is None:
            raise ConfigError("BiEncoderReranker needs corpus= (the texts of the candidates) "
                              "unless it is built on a DenseRetriever")

    def _doc_vectors(self, docids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row of each docid into the returned matrix, matrix of distinct needed vectors)."""
        unique, inverse = np.unique(docids.astype(str), return_inverse=True)
        dim = self.encoder.dimension
        vectors = np.empty((len(unique), dim), dtype=np.float32)
        missing = np.ones(len(unique), dtype=bool)
        if self.dense is not None:
            rows = self.dense.rows(unique)
            stored = rows >= 0
            vectors[stored] = self.embeddings[rows[stored]]
            missing = ~stored
        if missing.any():
            need = unique[missing].tolist()
            if self.corpus is None:
                raise RankkitError(
                    f"{len(need)} candidate(s) are not in the dense index (e.g. {need[:3]}); "
                    "pass corpus= so their texts can be encoded")
            absent = [d for d in need if d not in self.corpus]
            if absent:
                raise RankkitError(f"{len(absent)} candidate(s) are neither in the dense index nor in "
                                   f"the corpus, e.g. {absent[:3]}")
            texts = [self.corpus[d] for d in need]
            vectors[missing], _ = self.encoder.encode_documents(texts)
        return inverse.reshape(-1), vectors

    def score_pairs(self, query_texts: list[str], qidx: np.ndarray, docids: np.ndarray) -> np.ndarray:
        if self.dense is not None:
            queries = self.dense.encode_queries(query_texts)
        else:
            queries, _ = self.encoder.encode_queries(query_texts)
        drow, docs = self._doc_vectors(docids)
        scores = np.empty(len(docids), dtype=np.float32)
        for a in range(0, len(docids), _BLOCK):
            b = a + _BLOCK
            scores[a:b] = np.einsum("ij,ij->i", queries[qidx[a:b]], docs[drow[a:b]])
        return scores.astype(np.float64)

    def params(self) -> dict[str, Any]:
        p: dict[str, Any] = {"model": self.encoder.model_name}
        if self.dense is not None:
            p["index"] = self.dense.kind.name
        return p
