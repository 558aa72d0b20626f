"""rk.fuse / fuse_runs against hand-computed reciprocal-rank and linear fusion."""

from __future__ import annotations

import math

import numpy as np
import pytest

import rankkit as rk
from rankkit.errors import ConfigError
from rankkit.testing import check_retriever

# run A ranks d1 > d2 > d3, run B ranks d3 > d1 > d4 (d2 only in A, d4 only in B)
A = rk.Run({"q": (["d1", "d2", "d3"], [3.0, 2.0, 1.0])}, name="A")
B = rk.Run({"q": (["d3", "d1", "d4"], [0.9, 0.5, 0.1])}, name="B")


def _scores(run: rk.Run, qid: str = "q") -> dict[str, float]:
    return dict(run[qid])


def _order(run: rk.Run, qid: str = "q") -> list[str]:
    return run.docids(qid).tolist()


# ------------------------------------------------------------------------------- rrf
def test_rrf_by_hand():
    fused = rk.fuse_runs([A, B], method="rrf", rrf_k=60)
    expected = {"d1": 1 / 61 + 1 / 62, "d3": 1 / 63 + 1 / 61, "d2": 1 / 62, "d4": 1 / 63}
    assert _order(fused) == ["d1", "d3", "d2", "d4"]
    for d, v in expected.items():
        assert _scores(fused)[d] == pytest.approx(v, abs=1e-12)


def test_rrf_k_zero_is_plain_reciprocal_rank():
    fused = rk.fuse_runs([A, B], method="rrf", rrf_k=0)
    assert _scores(fused) == pytest.approx({"d1": 1.5, "d3": 1 / 3 + 1, "d2": 0.5, "d4": 1 / 3})


def test_weighted_rrf_by_hand():
    fused = rk.fuse_runs([A, B], method="rrf", rrf_k=60, weights=[1, 3])
    expected = {"d3": 1 / 63 + 3 / 61, "d1": 1 / 61 + 3 / 62, "d4": 3 / 63, "d2": 1 / 62}
    assert _order(fused) == ["d3", "d1", "d4", "d2"]
    assert _scores(fused) == pytest.approx(expected, abs=1e-12)


def test_rrf_ignores_score_scale():
    scaled = rk.Run({"q": (["d3", "d1", "d4"], [900.0, 500.0, -7.0])})
    assert rk.fuse_runs([A, B]) == rk.fuse_runs([A, scaled])


# ---------------------------------------------------------------------------- linear
def test_linear_minmax_by_hand():
    # A -> d1 1, d2 .5, d3 0; B -> d3 1, d1 .5, d4 0; missing documents get 0
    fused = rk.fuse_runs([A, B], method="linear", norm="minmax")
    assert _scores(fused) == pytest.approx({"d1": 1.5, "d3": 1.0, "d2": 0.5, "d4": 0.0})
    assert _order(fused) == ["d1", "d3", "d2", "d4"]


def test_weighted_linear_minmax_by_hand():
    fused = rk.fuse_runs([A, B], method="linear", norm="minmax", weights=[0.2, 0.8])
    assert _scores(fused) == pytest.approx({"d1": 0.2 + 0.4, "d3": 0.8, "d2": 0.1, "d4": 0.0})
    assert _order(fused) == ["d3", "d1", "d2", "d4"]


def test_linear_zscore_by_hand():
    # both runs have z-scores (+z, 0, -z) with z = sqrt(3/2); a missing document
    # gets the run's lowest z-score, never the mean (0)
    z = math.sqrt(1.5)
    fused = rk.fuse_runs([A, B], method="linear", norm="zscore")
    assert _scores(fused) == pytest.approx({"d1": z + 0, "d3": -z + z, "d2": 0 - z, "d4": -z - z})
    assert _order(fused) == ["d1", "d3", "d2", "d4"]


def test_zscore_never_lifts_an_unseen_document_over_a_seen_one():
    """A run that did not return a document ranks it below its own last hit."""
    a = rk.Run({"q": (["x", "y", "seen"], [10.0, 9.0, 1.0])})
    b = rk.Run({"q": (["seen", "unseen"], [5.0, 5.0])})  # b cannot tell them apart
    scores = _scores(rk.fuse_runs([a, b], method="linear", norm="zscore"))
    assert scores["seen"] >= scores["unseen"]


def test_linear_raw_scores_and_rank_norm_by_hand():
    raw = rk.fuse_runs([A, B], method="linear", norm="none")
    # missing from B: B's lowest raw score 0.1; missing from A: A's lowest 1.0
    assert _scores(raw) == pytest.approx({"d1": 3.5, "d2": 2.1, "d3": 1.9, "d4": 1.1})
    rank = rk.fuse_runs([A, B], method="linear", norm="rank")
    assert _scores(rank) == pytest.approx({"d1": 1 + 1 / 2, "d3": 1 / 3 + 1, "d2": 1 / 2, "d4": 1 / 3})


def test_minmax_of_a_single_hit_or_ties_is_one():
    one = rk.Run({"q": (["d9"], [4.2])})
    assert _scores(rk.fuse_runs([one], method="linear", norm="minmax")) == {"d9": 1.0}


# ----------------------------------------------------------------- queries and cutoff
def test_cutoff_and_queries_missing_from_a_run():
    a = rk.Run({"q": (["d1", "d2"], [2.0, 1.0]), "only_a": (["d5"], [1.0])})
    b = rk.Run({"q": (["d2", "d3"], [2.0, 1.0])})
    fused = rk.fuse_runs([a, b], k=2)
    assert fused.qids == ["q", "only_a"]
    assert _order(fused) == ["d2", "d1"]
    assert _scores(fused, "only_a") == pytest.approx({"d5": 1 / 61})
    empty = rk.fuse_runs([a, b], qids=["q", "nobody"])
    assert empty.qids == ["q", "nobody"] and len(empty.docids("nobody")) == 0


def test_fuse_stages_with_pushdown(demo):
    bm25 = rk.BM25.build(demo.corpus)
    plain = rk.BM25.build(demo.corpus, stemmer=None, stopwords=None)
    fusion = rk.fuse(bm25 % 5, plain % 5, method="rrf") % 3
    assert isinstance(fusion, rk.Fusion) and fusion.k == 3
    run = fusion(demo.queries)
    expected = rk.fuse_runs([(bm25 % 5)(demo.queries), (plain % 5)(demo.queries)], k=3)
    assert run == expected and all(len(run.docids(q)) <= 3 for q in run.qids)
    # a fixed run fuses like a stage, and a pipeline after fusion sees the fused run
    fixed = rk.fuse((bm25 % 5)(demo.queries), plain % 5) % 3
    assert fixed(demo.queries) == expected
    assert (rk.fuse(bm25 % 5, plain % 5) % 3 >> rk.Cutoff(2))(demo.queries).run == expected.top(2)


def test_describe_names_the_settings():
    f = rk.fuse(A, B, method="linear", norm="zscore", weights=[1, 2])
    assert f.params() == {"method": "linear", "norm": "zscore", "weights": [1, 2]}
    assert rk.fuse(A, B, rrf_k=10).params() == {"method": "rrf", "rrf_k": 10}


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("kwargs, match", [
    ({"method": "borda"}, "unknown fusion method"),
    ({"method": "linear", "norm": "softmax"}, "unknown score normalisation"),
    ({"rrf_k": -1}, "rrf_k"),
    ({"rrf_k": float("nan")}, "rrf_k"),
    ({"weights": [1.0]}, "1 fusion weights for 2"),
    ({"weights": [1.0, float("inf")]}, "finite"),
    ({"k": 0}, "positive integer"),
])
def test_bad_settings_fail_when_the_fusion_is_built(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        rk.fuse(A, B, **kwargs)
    with pytest.raises(ConfigError, match=match):
        rk.fuse_runs([A, B], **kwargs)


def test_fuse_needs_inputs():
    with pytest.raises(ConfigError):
        rk.fuse()
    with pytest.raises(ConfigError, match="stages or runs"):
        rk.fuse(A, "bm25")


def test_fused_scores_are_sorted_and_finite():
    fused = rk.fuse_runs([A, B], method="linear", norm="zscore")
    s = fused.scores("q")
    assert np.all(np.isfinite(s)) and np.all(np.diff(s) <= 0)


@pytest.mark.parametrize("method", ["rrf", "linear"])
def test_fusion_meets_the_stage_contract(demo, method):
    stemmed, plain = rk.BM25.build(demo.corpus), rk.BM25.build(demo.corpus, stemmer=None)
    check_retriever(rk.fuse(stemmed % 20, plain % 20, method=method, norm="zscore"), demo.queries)
