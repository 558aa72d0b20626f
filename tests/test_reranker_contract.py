"""The reranker contract (rerankers/base.py) and registry, on model-free rerankers with known answers."""

from __future__ import annotations

import numpy as np
import pytest

import rankkit as rk
from rankkit.errors import ConfigError, MissingResourceError, RankkitError
from rankkit.rerankers.base import order_to_scores
from rankkit.rerankers.registry import RERANKERS, make_reranker, reranker_class
from rankkit.testing import check_reranker

Q = rk.Queries({"a": "query a", "b": "query b", "c": "query c"})
# first stage: a ranks x1 > x2 > x3 > x4; b ranks y1 > y2; c has no candidates
FIRST = rk.Run({"a": (["x1", "x2", "x3", "x4"], [4.0, 3.0, 2.0, 1.0]), "b": (["y1", "y2"], [2.0, 1.0])})


class ByNumber(rk.Reranker):
    """Pairwise: the number in the docid is the score (x4 best)."""

    name = "by-number"

    def __init__(self):
        self.rows = []

    def score_pairs(self, query_texts, qidx, docids):
        self.rows.append(len(docids))
        return np.array([float(d[1:]) for d in docids])


class Reverse(rk.ListReranker):
    """List-level: reverses each list (the first stage's worst first)."""

    name = "reverse"

    def __init__(self):
        self.seen = []

    def rank_lists(self, query_texts, candidates, first_scores):
        self.seen.append([c.tolist() for c in candidates])
        return [np.arange(len(c))[::-1] for c in candidates]


class LengthScores(rk.ListReranker):
    """List-level returning scores: a candidate's place in the list (the first stage's worst best)."""

    name = "length-scores"
    returns = "scores"

    def rank_lists(self, query_texts, candidates, first_scores):
        return [np.arange(len(c), dtype=float) for c in candidates]


def _orders(run):
    return {q: run.docids(q).tolist() for q in run.qids}


def test_pairwise_and_list_level_rerank_alike():
    for stage in (ByNumber(), Reverse(), LengthScores()):
        out = stage(Q, FIRST)
        assert _orders(out) == {"a": ["x4", "x3", "x2", "x1"], "b": ["y2", "y1"], "c": []}
    rev = Reverse()
    rev(Q, FIRST)
    assert rev.seen == [[["x1", "x2", "x3", "x4"], ["y1", "y2"]]]  # first-stage order, no empty list
    assert dict(Reverse()(Q, FIRST)["a"]) == {"x4": 4.0, "x3": 3.0, "x2": 2.0, "x1": 1.0}
    np.testing.assert_array_equal(order_to_scores(np.array([2, 0, 1])), [2.0, 1.0, 3.0])


def test_contract_suite_passes_on_both_levels(demo):
    first = (rk.BM25.build(demo.corpus) % 6)(demo.queries)
    for stage in (ByNumber(), Reverse(), LengthScores()):
        check_reranker(stage, demo.queries, first)


def test_interpolation_is_the_zscore_mix_for_list_level_too():
    w = 0.25
    mixed = Reverse().interpolated(w)(Q, FIRST)
    z = lambda v: (np.asarray(v) - np.mean(v)) / np.std(v)  # noqa: E731
    first_z = dict(zip(["x1", "x2", "x3", "x4"], z([4.0, 3.0, 2.0, 1.0])))
    own_z = dict(zip(["x1", "x2", "x3", "x4"], z([1.0, 2.0, 3.0, 4.0])))  # order -> scores n - r
    assert dict(mixed["a"]) == pytest.approx({d: (1 - w) * first_z[d] + w * own_z[d] for d in first_z})
    assert mixed.name == "reverse+first(0.25)" and mixed.qids == ["a", "b", "c"]
    assert _orders(Reverse().interpolated(0.0)(Q, FIRST))["a"] == ["x1", "x2", "x3", "x4"]
    assert _orders(Reverse().interpolated(1.0)(Q, FIRST))["a"] == ["x4", "x3", "x2", "x1"]
    assert Reverse().interpolated("auto").interpolate is None  # no tuned weight: raw scores
    with pytest.raises(ConfigError, match=r"in \[0, 1\]"):
        Reverse().interpolated(2)


def test_depth_reranks_only_the_top_and_keeps_the_rest_below():
    stage = ByNumber().with_depth(2)
    out = stage(Q, FIRST)
    assert _orders(out)["a"] == ["x2", "x1", "x3", "x4"] and _orders(out)["b"] == ["y2", "y1"]
    assert stage.rows == [4]  # only 2 + 2 candidates were scored
    assert list(out.scores("a")) == [2.0, 1.0, 0.0, -1.0]
    assert stage.describe() == {"stage": "by-number", "depth": 2}
    with pytest.raises(ConfigError, match="depth"):
        ByNumber().with_depth(0)


def test_empty_inputs_and_timing():
    stage = Reverse()
    assert stage(rk.Queries({}), FIRST).qids == []
    out = stage(Q, rk.Run())
    assert out.qids == ["a", "b", "c"] and out.num_hits() == 0 and stage.seen == []
    stage(Q, FIRST)
    assert stage.stats["calls"] == 3 and stage.stats["candidates"] == 6 and stage.stats["seconds"] >= 0
    with pytest.raises(RankkitError, match="put a retriever before it"):
        stage(Q)


def test_bad_answers_are_clear_errors():
    class Short(rk.ListReranker):
        def rank_lists(self, query_texts, candidates, first_scores):
            return [np.array([0, 0, 1, 2])] + [np.arange(len(c)) for c in candidates[1:]]

    class Few(rk.Reranker):
        def score_pairs(self, query_texts, qidx, docids):
            return np.zeros(1)

    with pytest.raises(RankkitError, match="permutation of 0..3"):
        Short()(Q, FIRST)
    with pytest.raises(RankkitError, match="1 scores for 6 pairs"):
        Few()(Q, FIRST)
    with pytest.raises(NotImplementedError, match="rank_lists"):
        rk.ListReranker()(Q, FIRST)


def test_registry_resolves_names_paths_and_checks_options():
    assert set(RERANKERS) >= {"cross-encoder", "bi-encoder"}
    assert reranker_class(f"{__name__}:ByNumber") is ByNumber
    with pytest.raises(ConfigError, match="unknown reranker 'nope'.*cross-encoder"):
        make_reranker("nope")
    with pytest.raises(MissingResourceError, match="no_such_module"):
        make_reranker("no_such_module:X")
    with pytest.raises(ConfigError, match=r"takes no option\(s\) \['batch_size'\]"):
        make_reranker(f"{__name__}:ByNumber", batch_size=3)
    with pytest.raises(ConfigError, match="not a Reranker"):
        rk.register_reranker("bad", dict)
    with pytest.raises(ConfigError, match="already registered"):
        rk.register_reranker("cross-encoder", ByNumber)
    stage = make_reranker(f"{__name__}:Reverse", interpolate=0.5, depth=3)
    assert isinstance(stage, Reverse) and stage.interpolate == 0.5 and stage.depth == 3
