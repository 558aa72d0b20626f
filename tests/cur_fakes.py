"""A fake cross-encoder over a known low-rank score matrix, counting calls per query."""

from __future__ import annotations

from collections import Counter

import numpy as np

import rankkit as rk


class LowRankCE:
    """``predict`` looks (query, document) texts up in ``Q @ D.T``; counts pairs per query text."""

    model_name = "fake-low-rank"

    def __init__(self, n_docs: int = 300, n_queries: int = 80, rank: int = 5, seed: int = 0,
                 constant: bool = False, key: str = "fake0"):
        rng = np.random.default_rng(seed)
        self.q = rng.normal(size=(n_queries, rank))
        self.d = rng.normal(size=(n_docs, rank))
        self.scores = np.zeros((n_queries, n_docs)) if constant else self.q @ self.d.T
        self.query_texts = [f"query number {i}" for i in range(n_queries)]
        self.doc_texts = [f"document number {j}" for j in range(n_docs)]
        self._qi = {t: i for i, t in enumerate(self.query_texts)}
        self._di = {t: j for j, t in enumerate(self.doc_texts)}
        self.calls: Counter[str] = Counter()
        self.predict_calls = 0
        self.key = key

    def fingerprint(self) -> str:
        return self.key

    def predict(self, queries, docs) -> np.ndarray:
        self.predict_calls += 1
        self.calls.update(queries)
        return np.array([self._row(q)[self._di[d]] for q, d in zip(queries, docs)], dtype=np.float32)

    def _row(self, query: str) -> np.ndarray:
        """Known queries: their row; any other text: a fixed random vector in the same low-rank space."""
        if query in self._qi:
            return self.scores[self._qi[query]]
        seed = int.from_bytes(query.encode("utf-8")[:8].ljust(8, b"\0"), "little")
        return np.random.default_rng(seed).normal(size=self.q.shape[1]) @ self.d.T

    def corpus(self) -> rk.Corpus:
        return rk.Corpus([f"d{j}" for j in range(len(self.doc_texts))], self.doc_texts)

    def queries(self, rows) -> rk.Queries:
        return rk.Queries({f"q{i}": self.query_texts[i] for i in rows})

    def exact_top(self, row: int, k: int) -> list[str]:
        return [f"d{j}" for j in np.argsort(-self.scores[row], kind="stable")[:k]]
