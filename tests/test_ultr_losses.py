"""Click losses: IPS is unbiased on a closed-form toy case, DLA recovers propensities, never NaN."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rankkit.errors import ConfigError  # noqa: E402
from rankkit.training.losses import softmax_ce  # noqa: E402
from rankkit.ultr.clicklog import ClickLog  # noqa: E402
from rankkit.ultr.losses import DLA, IPS, NaiveClicks, get_click_objective, inverse_propensity  # noqa: E402
from rankkit.ultr.simulate import PositionBasedModel, click_probability  # noqa: E402

GRADES = np.array([[0, 3, 1, 4, 2]], dtype=float)
SCORES = torch.tensor([[0.3, -0.2, 1.0, 0.1, -0.5]], dtype=torch.float64)


def test_ips_weights_are_unbiased_closed_form():
    """E[c_k / p_k] = P(click | examined, y_k) exactly, while E[c_k] is biased by p_k."""
    model = PositionBasedModel(eta=1.0)
    p = model.examination(5)
    rates = model.click_rates(GRADES)[0]  # E[c_k] = p_k * a(y_k)
    truth = click_probability(GRADES[0], 4)
    assert rates * inverse_propensity(p) == pytest.approx(truth)
    assert not np.allclose(rates, truth)
    # and sampled: the IPS estimate converges to the truth within sampling error
    n = 200_000
    clicks = model.sample(np.repeat(GRADES, n, axis=0), np.random.default_rng(0))
    est = (clicks / p).mean(0)
    se = np.sqrt(truth * (1 / p - truth) / n)
    assert np.all(np.abs(est - truth) < 4.5 * se)


@pytest.mark.parametrize("kind", ["listwise", "pointwise"])
def test_ips_loss_in_expectation_equals_full_information_loss(kind):
    model = PositionBasedModel(eta=2.0)
    expected_clicks = torch.tensor(model.click_rates(GRADES))
    truth = torch.tensor(click_probability(GRADES, 4))

    def loss_and_grad(fn):
        s = SCORES.clone().requires_grad_(True)
        value = fn(s)
        value.backward()
        return float(value.detach()), s.grad

    ips, g_ips = loss_and_grad(lambda s: IPS(model.examination(5), kind=kind)(s, expected_clicks))
    _, g_naive = loss_and_grad(lambda s: NaiveClicks(kind)(s, expected_clicks))
    if kind == "listwise":
        full, g_full = loss_and_grad(lambda s: softmax_ce(s, truth))
    else:
        full, g_full = loss_and_grad(lambda s: torch.nn.functional.binary_cross_entropy_with_logits(s, truth))
    assert ips == pytest.approx(full, rel=1e-9)
    assert torch.allclose(g_ips, g_full)
    assert (g_naive - g_full).abs().max() > 0.05


def test_losses_are_finite_without_clicks_and_with_zero_propensities():
    scores = torch.randn(3, 4, requires_grad=True)
    none = torch.zeros(3, 4)
    some = torch.tensor([[0, 0, 0, 1], [0, 0, 0, 0], [1, 0, 0, 1.0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    for objective in (NaiveClicks(), IPS([1.0, 0.0, 0.0, 0.0]), IPS([1, 0, 0, 0], kind="pairwise"),
                      IPS([1, 0, 0, 0], kind="pointwise"), DLA(4)):
        for clicks in (none, some):
            loss = objective(scores, clicks, mask)
            assert torch.isfinite(loss)
            loss.backward()
            assert torch.isfinite(scores.grad).all()
            scores.grad = None
        if getattr(objective, "kind", "listwise") == "listwise":
            assert float(objective(scores, none, mask).detach()) == 0.0
    # zero propensity -> weight capped at max_weight, not inf
    assert IPS([1.0, 0.0], max_weight=50).weights(3).tolist() == [1.0, 50.0, 50.0]


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError):
        IPS([0.5, -1.0])
    with pytest.raises(ConfigError):
        IPS([1.0], kind="setwise")
    with pytest.raises(ConfigError):
        IPS([1.0], max_weight=0.5)
    with pytest.raises(ConfigError, match="needs propensities"):
        get_click_objective("ips")
    with pytest.raises(ConfigError):
        get_click_objective("regression-em")
    with pytest.raises(ConfigError, match="built for 2 ranks"):
        DLA(2)(torch.zeros(1, 3), torch.zeros(1, 3))


def test_dla_recovers_known_propensities():
    """Synthetic LTR data, PBM clicks with eta=1: DLA's estimate is close to 1/rank."""
    from rankkit.types import Run
    from rankkit.ultr.features import LtrData, train_on_clicks
    from rankkit.ultr.simulate import simulate_clicks

    rng = np.random.default_rng(0)
    n_q, n_d, n_f = 80, 10, 5
    X = rng.normal(size=(n_q * n_d, n_f)).astype(np.float32)
    y = np.clip(np.round(X @ np.array([1.0, -0.6, 0.4, 0.0, 0.2]) + 1.5), 0, 4)
    data = LtrData(X, y, np.arange(0, n_q * n_d + 1, n_d), [f"q{i}" for i in range(n_q)])
    # a logging ranker unrelated to relevance (random order per query)
    logging = Run.from_lists(data.qids, [data.docids[data.rows(i)] for i in range(n_q)],
                             [rng.random(n_d) for _ in range(n_q)])
    model = PositionBasedModel(eta=1.0)
    log = simulate_clicks(logging, data.qrels(), 60_000, model, k=n_d, seed=1)
    assert isinstance(log, ClickLog)
    res = train_on_clicks(log, data, DLA(n_d), epochs=150, batch_size=8, hidden=(16,), seed=0)
    est, true = res.propensities, model.examination(n_d)
    assert est[0] == pytest.approx(1.0)
    assert np.abs(est - true).max() < 0.06, (est.round(3), true.round(3))



@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on the GPU machine when lent)")
def test_dla_propensity_logits_follow_the_scores_device():
    """The logits live outside the ranker, so a Trainer moving the model does not move them: the loss does."""
    loss = DLA(5)
    param = loss.logits
    opt = torch.optim.AdamW([param], lr=0.1)
    scores = torch.randn(2, 5, device="cuda", requires_grad=True)
    clicks = torch.tensor([[1.0, 0, 0, 1, 0], [0, 1, 0, 0, 0]], device="cuda")
    out = loss(scores, clicks)
    out.backward()
    opt.step()
    assert loss.logits is param and param.device.type == "cuda"   # the same Parameter: the optimiser stepped it
    assert np.isfinite(loss.propensities()).all()
