"""Operators: chaining, cutoff pushdown, fusion, describe, interactive search."""

from __future__ import annotations

import numpy as np
import pytest

import rankkit as rk
from rankkit.errors import ConfigError, RankkitError
from rankkit.testing import check_reranker


class LengthReranker(rk.Reranker):
    """Scores a document by its length: deterministic, no model, for operator tests."""

    name = "length"

    def __init__(self, corpus):
        self.corpus = corpus
        self.calls = 0

    def score_pairs(self, query_texts, qidx, docids):
        self.calls += 1  # one batched call for all queries
        return np.array([len(self.corpus[d]) for d in docids], dtype=float)


@pytest.fixture()
def bm25(demo):
    return rk.BM25.build(demo.corpus)


def test_cutoff_is_pushed_into_the_retriever(bm25):
    pipe = bm25 % 100 >> rk.Cutoff(5)
    assert len(pipe.stages) == 1 and pipe.stages[0].k == 5
    assert (bm25 % 5).k == 5 and ((bm25 % 5) % 50).k == 5  # a cutoff never widens
    assert bm25.k is None  # the original is untouched


def test_chain_reranks_in_one_batch(demo, bm25):
    rr = LengthReranker(demo.corpus)
    pipe = bm25 % 10 >> rr % 3
    result = pipe(demo.queries)
    assert isinstance(result, rk.Result) and rr.calls == 1
    for qid in demo.queries:
        docs = result.run.docids(qid)
        assert len(docs) == min(3, len((bm25 % 10)(demo.queries.subset([qid])).docids(qid)))
        lengths = [len(demo.corpus[d]) for d in docs]
        assert lengths == sorted(lengths, reverse=True)
        assert set(docs) <= set((bm25 % 10)(demo.queries).docids(qid))
    assert set(result.timings) == {"0:bm25", "1:length", "2:cutoff"}


def test_reranker_needs_a_first_stage(demo):
    with pytest.raises(RankkitError, match="put a retriever before it"):
        LengthReranker(demo.corpus)(demo.queries)


def test_rrf_fusion_hand_computed():
    a = rk.Run.from_dict({"q": {"x": 3, "y": 2, "z": 1}})
    b = rk.Run.from_dict({"q": {"z": 9, "x": 1}})
    fused = rk.fuse_runs([a, b], method="rrf", rrf_k=60)
    expect = {"x": 1 / 61 + 1 / 62, "y": 1 / 62, "z": 1 / 63 + 1 / 61}
    got = dict(fused["q"])
    assert got == pytest.approx(expect)
    assert fused.docids("q").tolist() == ["x", "z", "y"]


def test_linear_fusion_minmax():
    a = rk.Run.from_dict({"q": {"x": 10, "y": 5, "z": 0}})
    b = rk.Run.from_dict({"q": {"z": 4, "y": 2}})
    fused = dict(rk.fuse_runs([a, b], method="linear", weights=[0.3, 0.7], norm="minmax")["q"])
    assert fused == pytest.approx({"x": 0.3, "y": 0.3 * 0.5 + 0.0, "z": 0.7})


def test_fuse_stages_with_cutoff(demo, bm25):
    plain = rk.BM25.build(demo.corpus, stemmer=None)
    pipe = rk.fuse(bm25 % 20, plain % 20) % 5
    assert isinstance(pipe, rk.Fusion) and pipe.k == 5
    run = pipe(demo.queries)
    assert all(len(run.docids(q)) <= 5 for q in demo.queries)
    d = pipe.describe()
    assert d["stage"] == "fuse" and d["method"] == "rrf" and len(d["inputs"]) == 2
    with pytest.raises(ConfigError, match="unknown fusion method"):
        rk.fuse(bm25, plain, method="max")


def test_describe_and_repr(demo, bm25):
    pipe = bm25 % 10 >> LengthReranker(demo.corpus) % 3
    d = pipe.describe()
    assert d["stage"] == "pipeline"
    assert d["stages"][0] == {"stage": "bm25", "backend": "bm25s", "k1": 1.5, "b": 0.75,
                              "stemmer": "english", "stopwords": "en", "k": 10}
    assert "%3" in repr(pipe)


def test_search_one_query(bm25):
    hits = (bm25 % 100).search("which bacteria did penicillin kill", k=3)
    assert hits[0][0] == "d25" and len(hits) == 3
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    with pytest.raises(RankkitError, match="non-empty query"):
        bm25.search("   ")


def test_bad_cutoffs(bm25):
    for bad in (0, -3, 2.5, "10"):
        with pytest.raises(ConfigError, match="positive integer"):
            bm25 % bad


def test_fixed_run_as_stage(demo):
    run = rk.Run.from_dict({"1": {"d01": 1.0}})
    out = rk.RunStage(run)(demo.queries)
    assert out["1"] == [("d01", 1.0)] and out["2"] == []


def test_pairwise_reranker_meets_the_stage_contract(demo, bm25):
    check_reranker(LengthReranker(demo.corpus), demo.queries, (bm25 % 6)(demo.queries))


def test_pipeline_and_runner_share_one_stage_loop(demo, bm25):
    from rankkit.pipeline import run_stages
    from rankkit.types import Answer, Result

    class FakeGenerator(rk.Stage):
        name = "generator"

        def transform(self, queries, run):
            return Result(run=run, answers={q: Answer(q, "x") for q in queries})

    out = run_stages([bm25 % 3, FakeGenerator()], demo.queries)
    assert set(out.answers) == set(demo.queries) and list(out.timings) == ["0:bm25", "1:generator"]
    with pytest.raises(RankkitError, match="a generator must be last"):
        (bm25 % 3 >> FakeGenerator() >> rk.Cutoff(1))(demo.queries)
    from rankkit.runner import execute

    with pytest.raises(RankkitError, match="a generator must be last"):
        execute(bm25 % 3 >> FakeGenerator() >> rk.Cutoff(1), demo.queries, progress=False)
