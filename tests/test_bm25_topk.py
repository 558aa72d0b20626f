"""BM25 (bm25s backend) top-k selection: rankkit ranks bm25s's own scores, faster."""

from __future__ import annotations

import numpy as np

from rankkit.retrievers.bm25 import top_k


def test_top_k_by_hand():
    scores = np.array([0.0, 3.0, 1.0, 3.0, 0.0, 2.0], dtype=np.float32)
    rows, vals = top_k(scores, 2)
    assert rows.tolist() == [1, 3] and vals.tolist() == [3.0, 3.0]  # tie: lower row first
    assert top_k(scores, 3)[0].tolist() == [1, 3, 5]
    assert top_k(scores, 10)[0].tolist() == [1, 3, 5, 2]  # zero scores are not hits
    assert len(top_k(np.zeros(5, dtype=np.float32), 3)[0]) == 0


def test_same_scores_as_bm25s_retrieve(scifact, scifact_bm25):
    queries = scifact.queries.head(50)
    run = scifact_bm25.retrieve(queries, 100)
    tokens = scifact_bm25._tokenizer.tokenize(queries.texts, update_vocab=False, return_as="ids",
                                              show_progress=False)
    docs, scores = scifact_bm25._retriever.retrieve(tokens, k=100, show_progress=False)
    for i, qid in enumerate(queries.ids):
        want = scores[i][scores[i] > 0]
        np.testing.assert_allclose(run.scores(qid), want, rtol=1e-6)
        # same documents wherever the score is not tied
        got = dict(zip(run.docids(qid).tolist(), run.scores(qid).tolist(), strict=True))
        for d, s in zip(scifact_bm25.docids[docs[i]].tolist(), scores[i].tolist(), strict=True):
            if s > 0 and np.sum(scores[i] == s) == 1 and s > want.min():
                assert d in got
