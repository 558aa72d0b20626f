"""Click simulation: rates match the click models' formulas within sampling error."""

from __future__ import annotations

import numpy as np
import pytest

from rankkit.errors import ConfigError
from rankkit.types import Queries, Run
from rankkit.ultr.simulate import (
    ULTRA_EXAMINATION,
    CascadeModel,
    PositionBasedModel,
    click_probability,
    get_click_model,
    simulate_clicks,
)


def _within(observed: np.ndarray, expected: np.ndarray, n: int, sigmas: float = 4.5) -> None:
    se = np.sqrt(expected * (1 - expected) / n) + 1e-12
    assert np.all(np.abs(observed - expected) <= sigmas * se), (observed, expected)


def test_click_probability_is_ultras_mapping():
    p = click_probability([0, 1, 2, 3, 4], max_grade=4)
    assert p[0] == pytest.approx(0.1) and p[-1] == pytest.approx(1.0)
    assert p[2] == pytest.approx(0.1 + 0.9 * 3 / 15)
    assert click_probability([-1, 9], max_grade=4).tolist() == pytest.approx([0.1, 1.0])


@pytest.mark.parametrize("eta", [1.0, 2.0])
def test_pbm_click_rates_match_formula(eta):
    grades = np.array([[4, 0, 2, 1, 3, 0, 4, 2]], dtype=float)
    n = 200_000
    model = PositionBasedModel(eta=eta)
    clicks = model.sample(np.repeat(grades, n, axis=0), np.random.default_rng(3))
    expected = (1.0 / np.arange(1, 9)) ** eta * click_probability(grades[0], 4)
    _within(clicks.mean(0), expected, n)


def test_pbm_with_ultra_curve_and_supplied_curve():
    model = PositionBasedModel(eta=2.0, curve="ultra")
    exam = model.examination(12)
    assert exam[:10] == pytest.approx(np.array(ULTRA_EXAMINATION) ** 2)
    assert exam[10] == exam[11] == pytest.approx(ULTRA_EXAMINATION[-1] ** 2)
    assert PositionBasedModel(curve=[0.9, 0.5]).examination(3).tolist() == pytest.approx([0.9, 0.5, 0.5])
    with pytest.raises(ConfigError):
        PositionBasedModel(curve="eyetracking")
    with pytest.raises(ConfigError):
        PositionBasedModel(curve=[1.5])
    with pytest.raises(ConfigError):
        PositionBasedModel(eta=-1)


def test_cascade_click_rates_match_formula_and_stop_after_first_click():
    grades = np.array([[1, 0, 3, 2, 4]], dtype=float)
    n = 200_000
    model = CascadeModel()
    clicks = model.sample(np.repeat(grades, n, axis=0), np.random.default_rng(5))
    a = click_probability(grades[0], 4)
    expected = a * np.concatenate([[1.0], np.cumprod(1 - a)[:-1]])
    _within(clicks.mean(0), expected, n)
    assert model.click_rates(grades)[0] == pytest.approx(expected)
    assert clicks.sum(1).max() == 1


def test_simulate_over_run_is_seeded_and_fast():
    import time

    run = Run.from_dict({f"q{i}": {f"d{j}": -j for j in range(15)} for i in range(50)})
    qrels = {f"q{i}": {f"d{j}": (i + j) % 5 for j in range(15)} for i in range(50)}
    t = time.perf_counter()
    log = simulate_clicks(run, qrels, 100_000, PositionBasedModel(eta=1.0), k=10, seed=7)
    assert time.perf_counter() - t < 5.0
    assert len(log) == 100_000 and log.width == 10
    again = simulate_clicks(run, qrels, 100_000, PositionBasedModel(eta=1.0), k=10, seed=7)
    assert np.array_equal(log.clicks, again.clicks) and np.array_equal(log.qids, again.qids)
    # the displayed list is the run's top 10, rank 1 first
    assert log.docids[0].tolist() == [f"d{j}" for j in range(10)]
    expected = PositionBasedModel(eta=1.0).click_rates(np.array([[(int(q[1:]) + j) % 5 for j in range(10)]
                                                                 for q in log.qids.tolist()]))
    _within(log.clicks.mean(0), expected.mean(0), len(log))


def test_simulate_with_a_stage_short_lists_and_unjudged_queries():
    from rankkit.pipeline import RunStage

    run = Run.from_dict({"a": {"x": 3, "y": 2}, "b": {"z": 1}, "c": {"w": 1}})
    qrels = {"a": {"x": 4}, "b": {"z": 0}}  # c has no qrels: never drawn
    log = simulate_clicks(RunStage(run), qrels, 1000, seed=1, queries=Queries({"a": "qa", "b": "qb", "c": "qc"}))
    assert set(log.qids.tolist()) == {"a", "b"}
    assert log.queries == {"a": "qa", "b": "qb"}
    short = log.qids == "b"
    assert (log.lengths[short] == 1).all() and (log.clicks[short, 1] == 0).all()
    with pytest.raises(ConfigError, match="queries"):
        simulate_clicks(RunStage(run), qrels, 10)
    with pytest.raises(ConfigError):
        simulate_clicks(run, qrels, 0)
    with pytest.raises(ConfigError):
        get_click_model("ubm")
    assert get_click_model("cascade", eta=2.0, max_grade=3).max_grade == 3


def test_import_rankkit_ultr_stays_light():
    import subprocess
    import sys

    code = ("import sys, rankkit.ultr, rankkit.ultr.losses, rankkit.ultr.features; "
            "print(any(m in sys.modules for m in ('torch', 'transformers', 'pyarrow', 'matplotlib')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
