"""BiEncoderReranker: dense scores on given candidates, from stored vectors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from dense_fixtures import (  # noqa: F401  (fixtures)
    fixture_dense_demo,
    fixture_few_threads,
    fixture_minilm_encoder,
)

import rankkit as rk
from rankkit.errors import ConfigError, RankkitError
from rankkit.retrievers.dense import DenseRetriever
from rankkit.testing import check_reranker


@pytest.fixture(scope="module")
def bm25_demo(demo):
    return rk.BM25.build(demo.corpus)


def _dense_scores(dense, queries, depth: int = 1000) -> dict[str, dict[str, float]]:
    return (dense % depth)(queries).to_dict()


def test_reranker_equals_dense_scores_on_the_same_candidates(dense_demo, bm25_demo, demo):
    pipe = bm25_demo % 8 >> dense_demo.as_reranker()
    reranked = pipe(demo.queries).run
    candidates = (bm25_demo % 8)(demo.queries)
    full = _dense_scores(dense_demo, demo.queries)
    for q in demo.queries:
        assert set(reranked.docids(q)) == set(candidates.docids(q))  # only the candidates
        expected = sorted(candidates.docids(q), key=lambda d: -full[q][d])
        assert reranked.docids(q).tolist() == expected
        np.testing.assert_allclose(reranked.scores(q), [full[q][d] for d in expected], atol=1e-5)


def test_reranker_reuses_stored_vectors_and_encodes_queries_once(dense_demo, bm25_demo, demo,
                                                                monkeypatch):
    st = dense_demo.encoder.model
    calls = {"query": 0, "query_texts": 0}
    real_query = st.encode_query

    def spy_query(texts, **kw):
        calls["query"] += 1
        calls["query_texts"] += len(texts)
        return real_query(texts, **kw)

    def no_docs(*a, **kw):
        raise AssertionError("a document was re-encoded")

    monkeypatch.setattr(st, "encode_query", spy_query)
    monkeypatch.setattr(st, "encode_document", no_docs)
    run = rk.BiEncoderReranker(dense_demo)(demo.queries, (bm25_demo % 10)(demo.queries))
    assert calls == {"query": 1, "query_texts": len(demo.queries)}
    assert run.num_hits() == (bm25_demo % 10)(demo.queries).num_hits()


def test_reranker_from_a_model_encodes_candidates_from_the_corpus(dense_demo, bm25_demo, demo,
                                                                 minilm_encoder):
    candidates = (bm25_demo % 6)(demo.queries)
    stored = rk.BiEncoderReranker(dense_demo)(demo.queries, candidates)
    fresh = rk.BiEncoderReranker(minilm_encoder, corpus=demo.corpus)(demo.queries, candidates)
    for q in demo.queries:
        assert fresh.docids(q).tolist() == stored.docids(q).tolist()
        np.testing.assert_allclose(fresh.scores(q), stored.scores(q), atol=1e-5)


def test_candidates_outside_the_index(dense_demo, demo, tmp_path):
    foreign = rk.Run({"1": (["d01", "zz-new"], [2.0, 1.0])})
    with pytest.raises(RankkitError, match="neither in the dense index nor in the corpus.*zz-new"):
        dense_demo.as_reranker()(demo.queries.subset(["1"]), foreign)
    dense_demo.save(tmp_path / "idx")
    without_corpus = DenseRetriever.load(tmp_path / "idx")
    with pytest.raises(RankkitError, match="not in the dense index.*zz-new.*corpus="):
        without_corpus.as_reranker()(demo.queries.subset(["1"]), foreign)
    extra = rk.Corpus(["d01", "zz-new"], [demo.corpus["d01"], "Photosynthesis in green plants"])
    run = dense_demo.as_reranker(corpus=extra)(demo.queries.subset(["1"]), foreign)
    assert set(run.docids("1")) == {"d01", "zz-new"}


def test_reranker_needs_texts_without_an_index(minilm_encoder):
    with pytest.raises(ConfigError, match="corpus="):
        rk.BiEncoderReranker(minilm_encoder)


def test_reranker_on_ivfpq_uses_exact_vectors_also_after_mmap_load(dense_demo, bm25_demo, demo,
                                                                   tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dense_demo.with_index("ivfpq", nbits=4).save(tmp_path / "ivf")
    loaded = DenseRetriever.load(tmp_path / "ivf", mmap=True)
    assert not loaded.embeddings.flags.owndata  # a view of the mapped file, not a copy
    candidates = (bm25_demo % 5)(demo.queries)
    a = dense_demo.as_reranker()(demo.queries, candidates)
    b = loaded.as_reranker()(demo.queries, candidates)
    assert a == b


def test_reranker_keeps_queries_without_candidates(dense_demo, demo):
    run = rk.Run({"1": (["d01"], [1.0]), "2": ([], [])})
    out = dense_demo.as_reranker()(demo.queries.subset(["1", "2"]), run)
    assert out.qids == ["1", "2"] and len(out.docids("2")) == 0


def test_reranker_meets_the_stage_contract(dense_demo, bm25_demo, demo):
    check_reranker(rk.BiEncoderReranker(dense_demo), demo.queries, (bm25_demo % 8)(demo.queries))


def test_registered_as_bi_encoder(minilm_encoder, bm25_demo, demo):
    candidates = (bm25_demo % 4)(demo.queries)
    by_name = rk.make_reranker("bi-encoder", model=minilm_encoder, corpus=demo.corpus)
    direct = rk.BiEncoderReranker(minilm_encoder, corpus=demo.corpus)
    assert by_name(demo.queries, candidates) == direct(demo.queries, candidates)


def test_no_import_cycle_with_the_dense_retriever():
    import subprocess
    import sys

    code = ("import sys; import rankkit.rerankers.biencoder; "
            "assert 'rankkit.retrievers.dense' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
