"""CURRetriever (ANNCUR / adaCUR): exact recovery on low-rank scores, call budgets, save/load, bad input."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from cur_fakes import LowRankCE

import rankkit as rk
from rankkit.errors import ConfigError, RankkitError
from rankkit.retrievers.cur import CURRetriever
from rankkit.retrievers.cur_math import regularised_weights, top_unscored

ANCHORS = range(0, 30)
TEST = range(30, 50)


@pytest.fixture()
def ce():
    return LowRankCE()


def _build(ce, **kw):
    opts = {"k_i": 20, "k_r": 20, **kw}
    return CURRetriever.build(ce.corpus(), ce, [ce.query_texts[i] for i in ANCHORS], **opts)


@pytest.mark.parametrize("rounds", [1, 4])
def test_recovers_exact_top_k_of_a_low_rank_matrix(ce, rounds):
    cur = _build(ce, rounds=rounds)
    run = (cur % 10)(ce.queries(TEST))
    for i in TEST:
        assert list(run.docids(f"q{i}")) == ce.exact_top(i, 10)
        assert np.allclose(run.scores(f"q{i}"), np.sort(ce.scores[i])[::-1][:10], atol=1e-4)
    assert cur.stats["min_anchor_rank"] == 5  # rank of the scores, found from 20 anchors


def test_first_stage_anchors_from_a_run_also_recover(ce):
    stage = rk.Run.from_dict({f"q{i}": {f"d{j}": 1.0 / (j + 1) for j in range(7)} for i in TEST})
    cur = _build(ce, anchor_items="first-stage", first_stage=stage, rounds=2)
    run = (cur % 5)(ce.queries(TEST))
    assert all(list(run.docids(f"q{i}")) == ce.exact_top(i, 5) for i in TEST)


@pytest.mark.parametrize("k_i,k_r,rounds", [(20, 20, 1), (12, 30, 3), (7, 0, 7), (30, 290, 2)])
def test_calls_per_query_never_exceed_the_budget(ce, k_i, k_r, rounds):
    cur = _build(ce, k_i=k_i, k_r=k_r, rounds=rounds)
    ce.calls.clear()
    ce.predict_calls = 0
    run = cur(ce.queries(TEST))
    budget = min(k_i + k_r, 300)
    for i in TEST:
        assert ce.calls[ce.query_texts[i]] == budget  # the fake's own count
        assert len(run.docids(f"q{i}")) == budget  # every scored item is returned, once
    assert cur.stats["max_calls_per_query"] == budget
    assert ce.predict_calls == rounds + (1 if min(k_r, 300 - k_i) else 0)  # one batched call per step


def test_save_load_gives_identical_runs_and_memory_maps_r(ce, tmp_path):
    cur = _build(ce, rounds=2, dtype="float16")
    before = cur(ce.queries(TEST))
    cur.save(tmp_path / "idx")
    manifest = json.loads((tmp_path / "idx" / "rankkit.json").read_text())
    assert manifest["kind"] == "cur" and manifest["model_fingerprint"] == "fake0"
    loaded = CURRetriever.load(tmp_path / "idx", cross_encoder=ce, corpus=ce.corpus())
    assert isinstance(loaded.r, np.memmap) and loaded.r.dtype == np.float16
    assert loaded(ce.queries(TEST)) == before
    assert type(rk.load_index(tmp_path / "idx", cross_encoder=ce, corpus=ce.corpus())) is CURRetriever


def test_load_refuses_another_model_or_a_changed_corpus(ce, tmp_path):
    _build(ce).save(tmp_path / "idx")
    with pytest.raises(ConfigError, match="fingerprint"):
        CURRetriever.load(tmp_path / "idx", cross_encoder=LowRankCE(key="other"), corpus=ce.corpus())
    changed = rk.Corpus(ce.corpus().ids, ["changed"] + ce.doc_texts[1:])
    with pytest.raises(ConfigError, match="corpus changed since indexing"):
        CURRetriever.load(tmp_path / "idx", cross_encoder=ce, corpus=changed)


def test_bad_budgets_and_too_few_anchor_queries(ce):
    with pytest.raises(ConfigError, match="smaller than the k_i=20"):
        _build(ce, budget=10)
    with pytest.raises(ConfigError, match="rounds"):
        _build(ce, k_i=3, rounds=4)
    with pytest.raises(ConfigError, match="n_anchor_items"):
        _build(ce, n_anchor_items=5)
    cur = _build(ce)
    with pytest.raises(ConfigError, match="smaller than"):
        cur.with_budget(budget=5)
    with pytest.warns(UserWarning, match="100 anchor queries requested but only 30"):
        cur = _build(ce, n_anchor_queries=100)
    assert cur.config["n_anchor_queries"] == 30


def test_constant_cross_encoder_is_refused_at_build():
    flat = LowRankCE(constant=True)
    with pytest.raises(ConfigError, match="same score"):
        _build(flat)


def test_ill_conditioned_intersection_is_regularised_and_reported():
    c = np.array([[1.0, 1.0], [1.0, 1.0 + 1e-12], [2.0, 2.0]])
    w, rep = regularised_weights(np.array([[1.0, 1.0]]), c)
    assert np.isfinite(w).all() and np.abs(w).max() < 10
    assert rep.condition_number > 1e6 and rep.min_rank == 1 and rep.ridge > 0


def test_more_anchor_queries_than_anchors_and_k_r_beyond_the_corpus(ce):
    cur = _build(ce, k_i=5, k_r=1000)  # 30 anchor queries > 5 anchors; k_r clipped to the corpus
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run = cur(ce.queries([31]))
    assert len(run.docids("q31")) == 300 and cur.stats["max_calls_per_query"] == 300


def test_top_unscored_skips_scored_and_pads():
    approx = np.array([[5.0, 4.0, 3.0, 2.0]])
    scored = np.array([[True, False, True, False]])
    assert top_unscored(approx, scored, 3).tolist() == [[1, 3, -1]]


def test_a_stage_in_pipelines_and_fusion(ce):
    cur = _build(ce)
    fused = rk.fuse(cur % 5, cur % 3)(ce.queries([31]))
    assert set(rk.as_run(fused).docids("q31")) == set(ce.exact_top(31, 5))


def test_real_tiny_cross_encoder_end_to_end(tmp_path):
    pytest.importorskip("torch")
    from tiny_models import build_tiny_bert

    folder = build_tiny_bert(tmp_path / "ce", head=True, seed=1)
    model = rk.CrossEncoder(folder, max_length=32, show_progress=False)
    corpus = rk.Corpus([f"d{i}" for i in range(40)], [f"text about topic {i % 7} number {i}" for i in range(40)])
    anchors = [f"topic {i}" for i in range(8)]
    cur = CURRetriever.build(corpus, model, anchors, k_i=6, k_r=6, rounds=2, cache=tmp_path / "scores")
    run = (cur % 4)(rk.Queries({"a": "topic 3", "b": "number 12"}))
    exact = model.predict(["topic 3"] * 40, corpus.contents)
    got = run.scores("a")
    assert len(got) == 4 and np.allclose(got, np.sort(exact[np.isin(corpus.ids, run.docids("a"))])[::-1], atol=1e-4)
    assert cur.stats["max_calls_per_query"] <= 12
    again = CURRetriever.build(corpus, model, anchors, k_i=6, k_r=6, cache=tmp_path / "scores")
    assert np.array_equal(again.r, cur.r)  # rows reused from the cache


def test_bad_anchor_mode_and_dtype(ce):
    with pytest.raises(ConfigError, match="anchor_items"):
        _build(ce, anchor_items="best")
    with pytest.raises(ConfigError, match="first_stage"):
        _build(ce, anchor_items="first-stage")
    with pytest.raises(ConfigError, match="float16"):
        _build(ce, dtype="int8")
    with pytest.raises(ConfigError, match="no anchor queries"):
        CURRetriever.build(ce.corpus(), ce, [])
    with pytest.raises(RankkitError):
        CURRetriever.build(ce.corpus(), ce, "one string")


def test_cli_index_cur_writes_a_loadable_index(tmp_path, capsys):
    pytest.importorskip("torch")
    from tiny_models import build_tiny_bert

    from rankkit.cli import main

    from conftest import DEMO

    folder = build_tiny_bert(tmp_path / "ce", head=True, seed=2)
    out = tmp_path / "idx"
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in ("index", "cur", "--corpus", DEMO, "--queries", DEMO, "--out", out,
                               "--model", folder, "--k-i", 5, "--k-r", 5, "--rounds", 2,
                               "--max-length", 32, "--dtype", "float16", "-q")])
    assert exc.value.code == 0, capsys.readouterr().err
    assert "indexed 30 documents" in capsys.readouterr().out
    corpus = rk.datasets.load_beir(DEMO).corpus
    cur = CURRetriever.load(out, cross_encoder=rk.CrossEncoder(folder, max_length=32, show_progress=False),
                            corpus=corpus)
    assert cur.rounds == 2 and cur.r.dtype == np.float16 and cur.r.shape == (10, 30)
    assert len((cur % 3)(rk.Queries({"x": "a query"})).docids("x")) == 3


def test_passes_the_retriever_contract(ce):
    from rankkit.testing import check_retriever

    cur = _build(ce, k_i=10, k_r=10, rounds=2)
    run = check_retriever(cur, ce.queries([31, 32, 33]), k=4)
    assert len(run.docids("q31")) == 20


def test_load_needs_the_corpus(ce, tmp_path):
    _build(ce).save(tmp_path / "idx")
    with pytest.raises(ConfigError, match="pass corpus="):
        CURRetriever.load(tmp_path / "idx", cross_encoder=ce)
