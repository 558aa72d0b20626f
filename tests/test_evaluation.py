"""rk.evaluate against hand-computed values and pytrec_eval; rk.compare's tests."""

from __future__ import annotations

import math

import numpy as np
import pytest

import rankkit as rk
from rankkit.errors import ConfigError
from rankkit.evaluation import holm

QRELS = rk.Qrels({"q1": {"d1": 1, "d3": 2, "d5": 0}, "q2": {"d2": 1}, "q3": {"d7": 1}})
RUN = rk.Run.from_dict({"q1": {"d1": 3.0, "d2": 2.0, "d3": 1.0}, "q2": {"d9": 1.0, "d2": 0.5}, "q3": {}})


def test_hand_computed_example():
    got = rk.evaluate(RUN, QRELS, ["nDCG@10", "AP", "RR", "P@2", "R@2"])
    ndcg_q1 = (1 / math.log2(2) + 2 / math.log2(4)) / (2 / math.log2(2) + 1 / math.log2(3))
    ndcg_q2 = (1 / math.log2(3)) / 1.0
    # q3 has judgements but an empty ranking: it counts as 0, never as missing
    assert got["nDCG@10"] == pytest.approx((ndcg_q1 + ndcg_q2 + 0) / 3)
    assert got["AP"] == pytest.approx(((1 + 2 / 3) / 2 + 0.5 + 0) / 3)
    assert got["RR"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert got["P@2"] == pytest.approx((0.5 + 0.5 + 0) / 3)
    assert got["R@2"] == pytest.approx((0.5 + 1 + 0) / 3)


def test_per_query_and_graded_measure():
    pq = rk.evaluate(RUN, QRELS, ["P(rel=2)@3", "nDCG@10"], per_query=True)
    assert set(pq) == {"q1", "q2", "q3"}
    assert pq["q1"]["P(rel=2)@3"] == pytest.approx(1 / 3)
    assert pq["q3"]["nDCG@10"] == 0.0


def test_unknown_measure_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown measure 'nDGC@10'"):
        rk.evaluate(RUN, QRELS, ["nDGC@10"])


def test_equals_pytrec_eval_on_scifact(scifact, scifact_bm25):
    import pytrec_eval

    run = (scifact_bm25 % 100)(scifact.queries)
    ours = rk.evaluate(run, scifact.qrels, ["nDCG@10", "AP", "R@100"], per_query=True)
    ev = pytrec_eval.RelevanceEvaluator(dict(scifact.qrels), {"ndcg_cut.10", "map", "recall.100"})
    theirs = ev.evaluate(run.to_dict())
    assert len(theirs) == 300
    for qid, m in theirs.items():
        assert ours[qid]["nDCG@10"] == pytest.approx(m["ndcg_cut_10"], abs=1e-9)
        assert ours[qid]["AP"] == pytest.approx(m["map"], abs=1e-9)
        assert ours[qid]["R@100"] == pytest.approx(m["recall_100"], abs=1e-9)


def test_equals_ir_measures_on_vaswani():
    import ir_measures

    from conftest import shared

    v = shared("trec", "vaswani")
    ds = rk.datasets.load_trec(v / "doc-text.trec", v / "query-text.trec", v / "qrels")
    run = (rk.BM25.build(ds.corpus, stemmer=None) % 1000)(ds.queries)
    ours = rk.evaluate(run, ds.qrels, ["nDCG@10", "AP"])
    qrels = [ir_measures.Qrel(q, d, g) for q, docs in ds.qrels.items() for d, g in docs.items()]
    sd = [ir_measures.ScoredDoc(q, d, s) for q, d, s in run]
    theirs = ir_measures.calc_aggregate([ir_measures.nDCG @ 10, ir_measures.AP], qrels, sd)
    assert ours["nDCG@10"] == pytest.approx(theirs[ir_measures.nDCG @ 10])
    assert ours["AP"] == pytest.approx(theirs[ir_measures.AP])
    assert ours["nDCG@10"] == pytest.approx(0.353, abs=0.005)  # the figure the data README reports


def test_holm_adjustment():
    # p = [0.01, 0.04, 0.03] -> sorted 0.01*3, 0.03*2, 0.04*1 -> monotone [0.03, 0.06, 0.06]
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # step-down keeps monotone


def test_compare_paired_ttest(scifact, scifact_bm25):
    from scipy import stats

    weak = rk.BM25.build(scifact.corpus, stemmer=None, stopwords=None, b=0.1)
    systems = {"bm25": scifact_bm25 % 100, "weak": weak % 100, "same": scifact_bm25 % 100}
    cmp = rk.compare(systems, scifact, ["nDCG@10", "R@100"])
    assert cmp.baseline == "bm25" and cmp.systems == ["bm25", "weak", "same"]
    a, b = cmp.per_query["weak"][0], cmp.per_query["bm25"][0]
    raw = stats.ttest_rel(a, b).pvalue
    assert cmp.pvalues["same"]["nDCG@10"] == 1.0
    assert cmp.pvalues["weak"]["nDCG@10"] == pytest.approx(min(1.0, 2 * raw))  # Holm over 2 systems
    assert cmp.means["bm25"]["nDCG@10"] > cmp.means["weak"]["nDCG@10"]
    assert cmp.significant("weak", "nDCG@10") == (cmp.pvalues["weak"]["nDCG@10"] < 0.05)
    table = cmp.table()
    assert "bm25 (baseline)" in table and "Holm" not in table and "holm correction" in table
    d = cmp.to_dict()
    assert d["systems"]["weak"]["nDCG@10"]["mean"] == pytest.approx(float(np.mean(a)))


def test_compare_takes_runs_and_rejects_bad_baseline():
    other = rk.Run.from_dict({"q1": {"d3": 1.0}, "q2": {"d2": 1.0}, "q3": {"d7": 1.0}})
    cmp = rk.compare({"a": RUN, "b": other}, QRELS, ["RR"])
    assert cmp.means["b"]["RR"] == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="baseline 'zz'"):
        rk.compare({"a": RUN}, QRELS, ["RR"], baseline="zz")


PLAIN_QRELS = {"q1": {"d1": 1, "d3": 2, "d5": 0}, "q2": {"d2": 1}, "q3": {"d7": 1}}
PLAIN_RUN = {"q1": {"d1": 3.0, "d2": 2.0, "d3": 1.0}, "q2": {"d9": 1.0, "d2": 0.5}, "q3": {}}


def test_plain_dicts_as_ir_measures_takes_them():
    got = rk.evaluate(PLAIN_RUN, PLAIN_QRELS, ["nDCG@10", "RR", "P@2"])
    ndcg_q1 = (1 / math.log2(2) + 2 / math.log2(4)) / (2 / math.log2(2) + 1 / math.log2(3))
    assert got["nDCG@10"] == pytest.approx((ndcg_q1 + 1 / math.log2(3) + 0) / 3)
    assert got["RR"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert got["P@2"] == pytest.approx((0.5 + 0.5 + 0) / 3)
    assert got == rk.evaluate(RUN, QRELS, ["nDCG@10", "RR", "P@2"])
    assert rk.evaluate(PLAIN_RUN, PLAIN_QRELS, ["RR"], per_query=True) == \
        {"q1": {"RR": 1.0}, "q2": {"RR": 0.5}, "q3": {"RR": 0.0}}


def test_compare_takes_plain_dicts():
    other = {"q1": {"d3": 1.0}, "q2": {"d2": 1.0}, "q3": {"d7": 1.0}}
    plain = rk.compare({"a": PLAIN_RUN, "b": other}, PLAIN_QRELS, ["RR", "nDCG@10"])
    typed = rk.compare({"a": RUN, "b": rk.Run.from_dict(other)}, QRELS, ["RR", "nDCG@10"])
    assert plain.means == typed.means and plain.pvalues == typed.pvalues
    assert plain.means["b"]["RR"] == 1.0 and plain.means["a"]["RR"] == pytest.approx(0.5)
