"""BM25 (bm25s backend): effectiveness on real collections, save/load, bad input."""

from __future__ import annotations

import pytest

import rankkit as rk
from rankkit.errors import ConfigError, MissingResourceError
from rankkit.testing import check_retriever

from conftest import shared


def test_scifact_ndcg_at_least_published(scifact, scifact_bm25):
    run = (scifact_bm25 % 100)(scifact.queries)
    got = rk.evaluate(run, scifact.qrels, ["nDCG@10", "R@100"])
    assert got["nDCG@10"] >= 0.67  # BEIR paper 0.665, Pyserini flat 0.679
    assert got["R@100"] >= 0.90
    sizes = [len(run.docids(q)) for q in scifact.queries]
    assert max(sizes) == 100 and sum(s == 100 for s in sizes) >= 290  # only matching docs are returned


def test_cranfield_bm25():
    ds = rk.datasets.load_beir(shared("beir", "cranfield"))
    run = (rk.BM25.build(ds.corpus) % 1000)(ds.queries)
    got = rk.evaluate(run, ds.qrels, ["AP", "nDCG@10"])
    assert got["AP"] == pytest.approx(0.310, abs=0.01)
    assert got["nDCG@10"] == pytest.approx(0.373, abs=0.01)


def test_vaswani_bm25_stemming_helps():
    v = shared("trec", "vaswani")
    ds = rk.datasets.load_trec(v / "doc-text.trec", v / "query-text.trec", v / "qrels")
    plain = rk.evaluate((rk.BM25.build(ds.corpus, stemmer=None) % 1000)(ds.queries), ds.qrels, ["nDCG@10"])
    stemmed = rk.evaluate((rk.BM25.build(ds.corpus) % 1000)(ds.queries), ds.qrels, ["nDCG@10"])
    assert plain["nDCG@10"] == pytest.approx(0.353, abs=0.005)
    assert stemmed["nDCG@10"] > plain["nDCG@10"] + 0.05


def test_save_load_identical_runs(tmp_path, scifact, scifact_bm25):
    scifact_bm25.save(tmp_path / "idx")
    loaded = rk.BM25.load(tmp_path / "idx")
    assert loaded.config == scifact_bm25.config
    q = scifact.queries.head(50)
    assert (loaded % 100)(q) == (scifact_bm25 % 100)(q)
    assert rk.load_index(tmp_path / "idx").config["k1"] == 1.5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_save_replaces_existing_index_atomically(tmp_path, demo):
    idx = rk.BM25.build(demo.corpus)
    idx.save(tmp_path / "idx")
    idx2 = rk.BM25.build(demo.corpus, k1=0.9)
    idx2.save(tmp_path / "idx")
    assert rk.BM25.load(tmp_path / "idx").config["k1"] == 0.9


def test_no_match_gives_empty_ranking(demo):
    bm25 = rk.BM25.build(demo.corpus)
    run = bm25({"a": "zyxwv qqqq", "b": "photosynthesis"})
    assert run["a"] == [] and run.docids("b")[0] == "d01"


def test_k_larger_than_corpus(demo):
    run = (rk.BM25.build(demo.corpus) % 1000)({"q": "the cell energy light"})
    assert 0 < len(run["q"]) <= 30


def test_bad_input(tmp_path, demo):
    with pytest.raises(ConfigError, match="empty corpus"):
        rk.BM25.build(rk.Corpus([], []))
    with pytest.raises(ConfigError, match="unknown stemmer language 'klingon'"):
        rk.BM25.build(demo.corpus, stemmer="klingon")
    with pytest.raises(ConfigError, match="unknown BM25 backend 'solr'"):
        rk.BM25.build(demo.corpus, backend="solr")
    with pytest.raises(MissingResourceError, match="index folder not found"):
        rk.BM25.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingResourceError, match="is not a rankkit index"):
        rk.BM25.load(tmp_path / "empty")
    with pytest.raises(rk.DataFormatError, match="query 'e' is empty"):
        rk.BM25.build(demo.corpus)({"e": " "})


def test_bm25_meets_the_stage_contract(demo):
    run = check_retriever(rk.BM25.build(demo.corpus), demo.queries)
    assert run.qids == demo.queries.ids
