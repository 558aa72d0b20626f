"""DenseRetriever: retrieval, save/load round trips, manifest checks, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from dense_fixtures import (  # noqa: F401  (fixtures)
    fixture_dense_demo,
    fixture_few_threads,
    fixture_minilm_encoder,
    fixture_tiny_model,
)

import rankkit as rk
from rankkit.errors import ConfigError, MissingResourceError
from rankkit.retrievers.dense import DenseRetriever
from rankkit.retrievers.encoder import SentenceEncoder, TruncationWarning


def _same_rankings(a: rk.Run, b: rk.Run) -> None:
    assert a.qids == b.qids
    for q in a.qids:
        assert a.docids(q).tolist() == b.docids(q).tolist(), q
        np.testing.assert_allclose(a.scores(q), b.scores(q), rtol=0, atol=1e-6)


# ------------------------------------------------------------------------- retrieval
def test_minilm_ranks_demo_well(dense_demo, demo):
    run = (dense_demo % 10)(demo.queries)
    scores = rk.evaluate(run, demo.qrels, ["nDCG@10", "R@10"])
    assert scores["nDCG@10"] > 0.9 and scores["R@10"] == 1.0
    assert all(len(run.docids(q)) == 10 for q in run.qids)


def test_scores_are_cosine_similarities_of_the_model(dense_demo, demo):
    """The index returns exactly the model's query-document cosine similarity."""
    st = dense_demo.encoder.model
    qid, text = next(iter(demo.queries.items()))
    hits = (dense_demo % 3)({qid: text})[qid]
    q = st.encode([text])[0]
    for docid, score in hits:
        d = st.encode([demo.corpus[docid]])[0]
        cos = float(q @ d / np.linalg.norm(q) / np.linalg.norm(d))
        assert score == pytest.approx(cos, abs=1e-5)


def test_k_larger_than_corpus_returns_all(dense_demo, demo):
    run = (dense_demo % 1000)(demo.queries.head(2))
    assert all(len(run.docids(q)) == len(demo.corpus) for q in run.qids)


def test_hnsw_returns_k_hits_even_with_a_small_ef_search(dense_demo, demo):
    hnsw = dense_demo.with_index("hnsw", M=8, efSearch=2)
    assert hnsw.search_options == {"ef_search": 2}
    run = (hnsw % 25)(demo.queries)
    assert all(len(run.docids(q)) == 25 for q in run.qids)
    flat = (dense_demo % 25)(demo.queries)
    for q in run.qids:  # 30 documents: a graph search at ef >= k finds the exact top 25
        assert set(run.docids(q)) == set(flat.docids(q))


def test_ivfpq_approximates_flat(dense_demo, demo):
    with pytest.warns(UserWarning, match="under-trained"):
        ivf = dense_demo.with_index("ivfpq", nbits=4)
    assert ivf.config["index"] == {"type": "ivfpq", "nlist": 1, "m": 48, "nbits": 4}
    run, flat = (ivf % 10)(demo.queries), (dense_demo % 10)(demo.queries)
    overlap = np.mean([len(set(run.docids(q)) & set(flat.docids(q))) / 10 for q in run.qids])
    assert overlap >= 0.8
    # its exact vectors are kept beside the lossy codes
    np.testing.assert_array_equal(ivf.embeddings, dense_demo.embeddings)


def test_ivfpq_refine_rescores_with_exact_vectors(dense_demo, demo):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ivf = dense_demo.with_index("ivfpq", nbits=2)  # 4 centroids: deliberately coarse codes
    refined = ivf.with_search(refine=30)  # re-score 30 x k candidates: every document
    exact = (dense_demo % 5)(demo.queries)
    _same_rankings(exact, (refined % 5)(demo.queries))
    coarse = (ivf % 5)(demo.queries)
    assert any(not np.allclose(coarse.scores(q), exact.scores(q), atol=1e-4) for q in coarse.qids)
    with pytest.raises(ConfigError, match="refine"):
        ivf.with_search(refine=-1)


def test_embeddings_view_outlives_the_retriever(dense_demo, tmp_path):
    import gc

    dense_demo.with_index("hnsw", M=8).save(tmp_path / "h")
    view = DenseRetriever.load(tmp_path / "h", mmap=True).embeddings  # the retriever is dropped
    gc.collect()
    np.testing.assert_array_equal(view, dense_demo.embeddings)
    assert not view.flags.writeable


# ----------------------------------------------------------------------- save / load
@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
@pytest.mark.parametrize("mmap", [False, True])
def test_save_load_round_trip_gives_identical_rankings(dense_demo, demo, tmp_path, kind, mmap):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dense = dense_demo if kind == "flat" else dense_demo.with_index(kind, nbits=4) \
            if kind == "ivfpq" else dense_demo.with_index(kind)
    before = (dense % 20)(demo.queries)
    dense.save(tmp_path / "idx")
    loaded = DenseRetriever.load(tmp_path / "idx", corpus=demo.corpus, mmap=mmap)
    assert loaded.config == dense.config and loaded.search_options == dense.search_options
    _same_rankings(before, (loaded % 20)(demo.queries))
    np.testing.assert_array_equal(np.asarray(loaded.embeddings), np.asarray(dense.embeddings))
    # and through the generic loader that `rankkit search` uses
    generic = rk.load_index(tmp_path / "idx")
    assert isinstance(generic, DenseRetriever)
    _same_rankings(before, (generic % 20)(demo.queries))


def test_manifest_records_what_the_index_is(dense_demo, demo, tmp_path):
    dense_demo.with_index("hnsw", M=8, ef_construction=40, ef_search=16).save(tmp_path / "h")
    m = json.loads((tmp_path / "h" / "rankkit.json").read_text())
    assert m["kind"] == "dense" and m["model"] == "minilm" and m["dimension"] == 384
    assert m["normalisation"] == "model" and m["similarity"] == "cosine"
    assert m["index"] == {"type": "hnsw", "M": 8, "ef_construction": 40}
    assert m["search"] == {"ef_search": 16}
    assert m["corpus_fingerprint"] == demo.corpus.fingerprint() and m["num_docs"] == 30
    assert m["truncated"] == 0 and len(m["model_fingerprint"]) == 16
    assert sorted(p.name for p in (tmp_path / "h").iterdir()) == ["docids.json", "index.faiss",
                                                                  "rankkit.json"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dense_demo.with_index("ivfpq", nbits=4).save(tmp_path / "i")
    m = json.loads((tmp_path / "i" / "rankkit.json").read_text())
    assert m["search"] == {"nprobe": 16, "refine": 0}
    assert m["files"] == {"index": "index.faiss", "docids": "docids.json", "vectors": "vectors.faiss"}


def test_load_overrides_search_knobs(dense_demo, tmp_path):
    dense_demo.with_index("hnsw", M=8).save(tmp_path / "h")
    loaded = DenseRetriever.load(tmp_path / "h", efSearch=7)
    assert loaded.search_options == {"ef_search": 7}
    with pytest.raises(ConfigError, match="nprobe"):
        DenseRetriever.load(tmp_path / "h", nprobe=3)


def test_load_against_another_corpus_is_an_error(dense_demo, demo, tmp_path):
    dense_demo.save(tmp_path / "idx")
    other = rk.Corpus(demo.corpus.ids, [t + " (edited)" for t in demo.corpus.texts])
    with pytest.raises(ConfigError, match="another corpus"):
        DenseRetriever.load(tmp_path / "idx", corpus=other)


def test_load_with_another_model_is_an_error(dense_demo, tmp_path, tiny_model):
    dense_demo.save(tmp_path / "idx")
    with pytest.raises(ConfigError, match="built with model 'minilm'"):
        DenseRetriever.load(tmp_path / "idx", model=str(tiny_model))


def test_load_when_the_model_changed_since_is_an_error(dense_demo, tmp_path):
    dense_demo.save(tmp_path / "idx")
    manifest = tmp_path / "idx" / "rankkit.json"
    m = json.loads(manifest.read_text())
    m["model_fingerprint"] = "0" * 16  # as if the installed weights were no longer the same
    manifest.write_text(json.dumps(m))
    with pytest.raises(ConfigError, match="differs"):
        DenseRetriever.load(tmp_path / "idx")


def test_load_of_a_bm25_folder_as_dense_is_an_error(demo, tmp_path):
    rk.BM25.build(demo.corpus).save(tmp_path / "bm25")
    with pytest.raises(ConfigError, match="not 'dense'"):
        DenseRetriever.load(tmp_path / "bm25")


def test_save_is_atomic(dense_demo, tmp_path, monkeypatch):
    import rankkit.retrievers.dense as dense_module

    def boom(index, path):
        raise OSError("disk full")

    monkeypatch.setattr(dense_module, "write_index", boom)
    with pytest.raises(OSError):
        dense_demo.save(tmp_path / "idx")
    assert list(tmp_path.iterdir()) == []  # neither the folder nor a temporary sibling


# ---------------------------------------------------------------- models and prefixes
def test_unknown_model_name_is_a_clear_error_without_network(monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("tried to reach the network")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(MissingResourceError, match="'nosuch/bi-encoder'.*huggingface-cli download"):
        DenseRetriever.build({"a": "text"}, model="nosuch/bi-encoder")
    with pytest.raises(MissingResourceError, match="model path not found"):
        DenseRetriever.build({"a": "text"}, model="./no/such/model")


def test_a_language_model_is_not_a_bi_encoder():
    with pytest.raises((ConfigError, MissingResourceError), match="smollm2"):
        SentenceEncoder("smollm2")


def test_empty_corpus_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="empty corpus"):
        DenseRetriever.build({}, model="./never/loaded")  # checked before any model loads


def test_unknown_index_or_option_fails_before_encoding():
    with pytest.raises(ConfigError, match="unknown dense index type 'annoy'"):
        DenseRetriever.build({"a": "x"}, model="./never/loaded", index="annoy")
    with pytest.raises(ConfigError, match="nprobe"):
        DenseRetriever.build({"a": "x"}, model="./never/loaded", index="hnsw", nprobe=4)


def test_ivfpq_on_too_few_vectors_is_an_error(dense_demo):
    with pytest.raises(ConfigError, match="too few"):
        dense_demo.with_index("ivfpq", nlist=64)
    with pytest.raises(ConfigError, match="must divide"):
        dense_demo.with_index("ivfpq", m=7, nbits=2)


def test_tiny_model_by_path_normalised_by_rankkit(tiny_model):
    corpus = {"a": "the cat sat on the mat", "b": "stock markets fell sharply", "c": "a kitten"}
    dense = DenseRetriever.build(corpus, model=str(tiny_model))
    assert dense.config["normalisation"] == "rankkit" and dense.config["dimension"] == 32
    np.testing.assert_allclose(np.linalg.norm(dense.embeddings, axis=1), 1.0, atol=1e-5)
    run = dense({"q": "cat on a mat"})
    assert np.all(run.scores("q") <= 1.0 + 1e-5)


def test_long_documents_are_truncated_counted_and_reported_once(tiny_model, tmp_path):
    corpus = {"long1": "word " * 300, "long2": "other " * 100, "short": "a short text"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dense = DenseRetriever.build(corpus, model=str(tiny_model))
    trunc = [w for w in caught if issubclass(w.category, TruncationWarning)]
    assert len(trunc) == 1 and "2 of 3 documents" in str(trunc[0].message)
    assert "64-token window" in str(trunc[0].message)
    assert dense.config["truncated"] == 2
    dense.save(tmp_path / "idx")
    assert json.loads((tmp_path / "idx" / "rankkit.json").read_text())["truncated"] == 2


def test_long_queries_are_reported_once_per_retriever(tiny_model):
    dense = DenseRetriever.build({"a": "x", "b": "y"}, model=str(tiny_model))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dense({"q1": "long " * 200, "q2": "short"})
        dense({"q1": "long " * 200})
    trunc = [w for w in caught if issubclass(w.category, TruncationWarning)]
    assert len(trunc) == 1 and "1 of 2 queries" in str(trunc[0].message)


def test_prefixes_are_prepended_and_kept_by_the_index(tiny_model, tmp_path):
    corpus = {"a": "the cat sat on the mat", "b": "stock markets fell sharply"}
    dense = DenseRetriever.build(corpus, model=str(tiny_model), query_prefix="query: ",
                                 doc_prefix="passage: ")
    assert (dense.config["query_prompt"], dense.config["doc_prompt"]) == ("query: ", "passage: ")
    st = dense.encoder.model
    expected = st.encode(["passage: the cat sat on the mat"], normalize_embeddings=True)[0]
    np.testing.assert_allclose(dense.embeddings[0], expected, atol=1e-5)
    q = st.encode(["query: a cat"], normalize_embeddings=True)[0]
    np.testing.assert_allclose(dense.encode_queries(["a cat"])[0], q, atol=1e-5)
    dense.save(tmp_path / "idx")
    loaded = DenseRetriever.load(tmp_path / "idx")
    assert loaded.encoder.query_prompt == "query: " and loaded.encoder.doc_prompt == "passage: "
    np.testing.assert_allclose(loaded.encode_queries(["a cat"])[0], q, atol=1e-5)


def test_model_prompts_are_followed(tiny_model, tmp_path):
    """A model whose config carries E5-style prompts gets them without being told."""
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(tiny_model), prompts={"query": "query: ", "document": "passage: "})
    st.save(str(tmp_path / "prompted"))
    enc = SentenceEncoder(str(tmp_path / "prompted"))
    assert (enc.query_prompt, enc.doc_prompt) == ("query: ", "passage: ")
    vec, _ = enc.encode_queries(["a cat"])
    np.testing.assert_allclose(vec[0], st.encode(["query: a cat"], normalize_embeddings=True)[0],
                               atol=1e-5)


def test_import_stays_light():
    code = ("import sys, rankkit as rk; rk.DenseRetriever; rk.BiEncoderReranker; "
            "heavy = [m for m in ('torch', 'faiss', 'sentence_transformers', 'transformers') "
            "if m in sys.modules]; print(heavy)")
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=root)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_multi_process_encoding_matches_one_process(demo, minilm_encoder):
    """Spawning workers costs tens of seconds on a busy 2-core machine, hence slow."""
    pooled = SentenceEncoder("minilm", batch_size=8, processes=2)
    a, _ = minilm_encoder.encode_documents(demo.corpus.contents)
    b, _ = pooled.encode_documents(demo.corpus.contents)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_flat_dense_meets_the_stage_contract(dense_demo, demo):
    from rankkit.testing import check_retriever

    check_retriever(dense_demo, demo.queries)
