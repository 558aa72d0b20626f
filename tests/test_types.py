"""The data model: Corpus, Queries, Qrels, Run and their invariants."""

from __future__ import annotations

import numpy as np
import pytest

import rankkit as rk
from rankkit.errors import DataFormatError, RankkitError


def test_corpus_lookup_joins_title_and_text():
    c = rk.Corpus(["a", "b"], ["alpha text", "beta text"], ["Alpha", ""])
    assert c["a"] == "Alpha alpha text"
    assert c["b"] == "beta text"
    assert c.body("a") == "alpha text" and c.title("a") == "Alpha"
    assert "a" in c and "z" not in c and len(c) == 2
    with pytest.raises(KeyError, match="'z' is not in the corpus"):
        c["z"]


def test_corpus_rejects_duplicate_ids():
    with pytest.raises(DataFormatError, match="duplicate document id 'a'.*entries 1 and 3"):
        rk.Corpus(["a", "b", "a"], ["x", "y", "z"])


def test_corpus_from_mapping_and_hf_dataset():
    c = rk.Corpus.coerce({"d1": "plain", "d2": {"title": "T", "text": "body"}})
    assert c["d1"] == "plain" and c["d2"] == "T body"
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"_id": ["x", "y"], "text": ["one", "two"], "title": ["", "Y"]})
    c2 = rk.Corpus.coerce(ds)
    assert c2.ids == ["x", "y"] and c2["y"] == "Y two"
    bad = datasets.Dataset.from_dict({"id": ["x"], "body": ["one"]})
    with pytest.raises(RankkitError, match="no column '_id'"):
        rk.Corpus.coerce(bad)


def test_fingerprint_changes_with_content():
    a = rk.Corpus(["1", "2"], ["x", "y"])
    b = rk.Corpus(["1", "2"], ["x", "y!"])
    assert a.fingerprint() == rk.Corpus(["1", "2"], ["x", "y"]).fingerprint()
    assert a.fingerprint() != b.fingerprint()


def test_queries_coerce_forms():
    assert rk.Queries.coerce("hello").ids == ["q1"]
    assert rk.Queries.coerce(["a", "b"])["q2"] == "b"
    with pytest.raises(DataFormatError, match="query 'x' is empty"):
        rk.Queries({"x": "  "}).check_not_empty()


def test_run_sorts_and_keeps_empty_queries():
    run = rk.Run.from_dict({"q1": {"a": 0.1, "b": 0.9, "c": 0.5}, "q2": {}})
    assert run["q1"] == [("b", 0.9), ("c", 0.5), ("a", 0.1)]
    assert run["q2"] == [] and len(run) == 2
    assert run.top(2)["q1"] == [("b", 0.9), ("c", 0.5)]
    assert list(run) == [("q1", "b", 0.9), ("q1", "c", 0.5), ("q1", "a", 0.1)]
    with pytest.raises(RankkitError):
        run.top(-1)


def test_pairs_and_from_flat_round_trip():
    run = rk.Run.from_dict({"q1": {"a": 3, "b": 2}, "q2": {}, "q3": {"c": 1}})
    qids, qidx, docids = run.pairs()
    assert qids == ["q1", "q2", "q3"]
    assert qidx.tolist() == [0, 0, 2] and docids.tolist() == ["a", "b", "c"]
    # reverse the scores: the rebuilt run is re-sorted, q2 stays empty
    back = rk.Run.from_flat(qids, qidx, docids, np.array([1.0, 5.0, 2.0]))
    assert back["q1"] == [("b", 5.0), ("a", 1.0)] and back["q2"] == [] and back["q3"] == [("c", 2.0)]


def test_trec_run_round_trip(tmp_path):
    # scores 1e-7 apart must stay apart: 6-decimal rounding made them ties (docid order on evaluation)
    run = rk.Run.from_dict({"q1": {"d1": 2.5, "d2": 1.0, "d0": 1.0000001}, "q2": {"d3": 0.25}}, name="sys")
    path = tmp_path / "out.run"
    run.write_trec(path)
    lines = path.read_text().splitlines()
    assert lines[0] == "q1 Q0 d1 1 2.5 sys" and lines[1] == "q1 Q0 d0 2 1.0000001 sys"
    back = rk.Run.read_trec(path)
    assert back == run and back["q1"][1] == ("d0", 1.0000001)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


def test_run_write_is_atomic_on_crash(tmp_path):
    path = tmp_path / "r.run"
    path.write_text("old content\n")
    run = rk.Run.from_dict({"q": {"d": 1.0}})
    run._r["q"] = (np.array(["d"], dtype=object), np.array(["not-a-float"], dtype=object))
    with pytest.raises(ValueError):
        run.write_trec(path)
    assert path.read_text() == "old content\n"
    assert [p.name for p in tmp_path.iterdir()] == ["r.run"]


def test_read_trec_bad_lines(tmp_path):
    p = tmp_path / "bad.run"
    p.write_text("q1 Q0 d1 1 2.0 tag\nq1 Q0 d2 2 tag\n")
    with pytest.raises(DataFormatError, match=r"bad.run, line 2: expected 6 columns"):
        rk.Run.read_trec(p)
    p.write_text("q1 Q0 d1 1 high tag\n")
    with pytest.raises(DataFormatError, match=r"line 1: score 'high' is not a number"):
        rk.Run.read_trec(p)
