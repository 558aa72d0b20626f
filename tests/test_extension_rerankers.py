"""Acceptance (issue 10): a list-level reranker added from this file alone, with one registry call,
runs in a pipeline with interpolation and through ``rankkit rerank --reranker``."""

from __future__ import annotations

import json

import numpy as np
import pytest

import rankkit as rk
from rankkit.cli import main
from rankkit.testing import check_reranker

from conftest import DEMO


class ShortestFirst(rk.ListReranker):
    """Toy listwise reranker: the shortest document first (``longest_first`` turns it round)."""

    name = "toy"

    def __init__(self, model=None, corpus=None, longest_first: bool = False):
        self.corpus = rk.Corpus.coerce(corpus)
        self.sign = -1 if longest_first else 1

    def rank_lists(self, query_texts, candidates, first_scores):
        return [np.argsort([self.sign * len(self.corpus[d]) for d in c], kind="stable") for c in candidates]


rk.register_reranker("toy", ShortestFirst)

# d1 is the longest text, d4 the shortest; the first stage ranks d1 > d2 > d3 >> d4
DOCS = {"d1": "a b c d e f g", "d2": "a b c d e", "d3": "a b c", "d4": "a"}
FIRST = rk.Run({"q1": (["d1", "d2", "d3", "d4"], [10.0, 9.0, 8.0, 0.0])}, name="first")
QUERIES = rk.Queries({"q1": "letters", "q2": "no candidates"})


def test_toy_reranker_in_a_pipeline_with_interpolation():
    toy = rk.make_reranker("toy", corpus=DOCS)
    assert toy(QUERIES, FIRST).docids("q1").tolist() == ["d4", "d3", "d2", "d1"]
    # w = 0.5: z(first) = (.82, .57, .32, -1.70), z(toy: d4 4 .. d1 1) = (-1.34, -.45, .45, 1.34)
    pipe = rk.RunStage(FIRST) >> rk.make_reranker("toy", corpus=DOCS, interpolate=0.5) % 3
    result = pipe(QUERIES)
    assert result.run.docids("q1").tolist() == ["d3", "d2", "d4"]
    assert result.run.qids == ["q1", "q2"] and len(result.run.docids("q2")) == 0
    assert list(result.timings) == ["0:run", "1:toy", "2:cutoff"]
    # w = 0.2 leans on the first stage: its order survives
    assert (rk.RunStage(FIRST) >> toy.interpolated(0.2))(QUERIES).run.docids("q1").tolist() == \
        ["d1", "d2", "d3", "d4"]
    assert pipe.describe()["stages"][1] == {"stage": "toy", "interpolate": 0.5}


def test_toy_reranker_meets_the_contract(demo):
    check_reranker(rk.make_reranker("toy", corpus=demo.corpus), demo.queries,
                   (rk.BM25.build(demo.corpus) % 8)(demo.queries))


def _cli(*args) -> int:
    with pytest.raises(SystemExit) as stop:
        main([str(a) for a in args])
    return stop.value.code


def test_toy_reranker_through_rankkit_rerank(tmp_path, capsys):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": d, "text": t}) + "\n" for d, t in DOCS.items()))
    queries = tmp_path / "queries.tsv"
    queries.write_text("q1\tletters\n")
    first = tmp_path / "first.trec"
    FIRST.write_trec(first)
    common = ["rerank", first, "--corpus", corpus, "--queries", queries, "--reranker", "toy", "-q", "--verbose"]

    assert _cli(*common, "--out", tmp_path / "toy.trec", "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["reranker"] == "toy" and summary["pairs"] == 4
    assert rk.Run.read_trec(tmp_path / "toy.trec").docids("q1").tolist() == ["d4", "d3", "d2", "d1"]

    assert _cli(*common, "--out", tmp_path / "mix.trec", "--interpolate", "0.5", "-o", "longest_first=false") == 0
    assert rk.Run.read_trec(tmp_path / "mix.trec").docids("q1").tolist() == ["d3", "d2", "d4", "d1"]
    assert _cli(*common, "--out", tmp_path / "long.trec", "-o", "longest_first=true") == 0
    assert rk.Run.read_trec(tmp_path / "long.trec").docids("q1").tolist() == ["d1", "d2", "d3", "d4"]

    capsys.readouterr()
    assert _cli(*common, "--out", tmp_path / "bad.trec", "-o", "batch_size=8") == 2
    err = capsys.readouterr().err
    assert "takes no option(s) ['batch_size']" in err and "Traceback" not in err
    assert not (tmp_path / "bad.trec").exists()
    assert _cli(*common[:6], "--reranker", "listwise-typo", "-q", "--verbose", "--out", tmp_path / "bad.trec") == 2
    assert "unknown reranker 'listwise-typo'" in capsys.readouterr().err


def test_demo_queries_through_the_cli_keep_every_query(tmp_path):
    run = (rk.BM25.build(rk.datasets.load_beir(DEMO).corpus) % 5)(rk.datasets.read_queries(DEMO))
    run.write_trec(tmp_path / "bm25.trec")
    assert _cli("rerank", tmp_path / "bm25.trec", "--corpus", DEMO, "--queries", DEMO, "--reranker",
                f"{__name__}:ShortestFirst", "--out", tmp_path / "out.trec", "-q", "--verbose") == 0
    out = rk.Run.read_trec(tmp_path / "out.trec")
    corpus = rk.datasets.load_beir(DEMO).corpus
    assert out.qids == run.qids
    for q in run.qids:
        lengths = [len(corpus[d]) for d in out.docids(q)]
        assert lengths == sorted(lengths) and sorted(out.docids(q)) == sorted(run.docids(q))
