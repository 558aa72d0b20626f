"""Learning-to-rank losses against hand-computed values."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from rankkit.errors import ConfigError  # noqa: E402
from rankkit.training.losses import LOSSES, get_loss  # noqa: E402

S = torch.tensor([[1.0, 0.0, 2.0]])
Y = torch.tensor([[1.0, 0.0, 0.0]])
LSE = math.log(math.e + 1 + math.e ** 2)           # log-sum-exp of (1, 0, 2)


def sp(x: float) -> float:                          # softplus
    return math.log1p(math.exp(x))


def test_bce():
    got = LOSSES["bce"](torch.tensor([[0.0, 2.0]]), torch.tensor([[1.0, 0.0]]))
    assert got.item() == pytest.approx((math.log(2) + sp(2.0)) / 2, abs=1e-6)


def test_ranknet():
    # pairs (0 > 1): s diff 1; (0 > 2): s diff -1
    assert LOSSES["ranknet"](S, Y).item() == pytest.approx((sp(-1.0) + sp(1.0)) / 2, abs=1e-6)


def test_softmax_ce():
    assert LOSSES["softmax_ce"](S, Y).item() == pytest.approx(LSE - 1.0, abs=1e-6)


def test_listnet():
    z = math.e + 2
    p = [math.e / z, 1 / z, 1 / z]
    logp = [1 - LSE, 0 - LSE, 2 - LSE]
    assert LOSSES["listnet"](S, Y).item() == pytest.approx(-sum(a * b for a, b in zip(p, logp)), abs=1e-6)


def test_lambdaloss_plain_and_lambdarank():
    s, y = torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.0]])
    plain = math.log2(1 + math.e)                   # -log2 sigmoid(0 - 1)
    assert LOSSES["lambdaloss"](s, y, weighing_scheme=None).item() == pytest.approx(plain, abs=1e-5)
    # lambdaRank weight: |1/D1 - 1/D2| * |G1 - G2| with D = log2(1 + rank), G = 2^y - 1 (maxDCG 1)
    w = abs(1 - 1 / math.log2(3)) * 1.0
    assert LOSSES["lambdaloss"](s, y, weighing_scheme="lambdaRank").item() == pytest.approx(w * plain, abs=1e-5)
    # a correct order costs less than the wrong one
    good = LOSSES["lambdaloss"](torch.tensor([[2.0, 0.0]]), y).item()
    bad = LOSSES["lambdaloss"](torch.tensor([[0.0, 2.0]]), y).item()
    assert good < bad


@pytest.mark.parametrize("name", list(LOSSES))
def test_padding_is_ignored(name):
    fn = LOSSES[name]
    padded_s = torch.tensor([[1.0, 0.0, 2.0, 9.0]])
    padded_y = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True, False]])
    assert fn(padded_s, padded_y, mask).item() == pytest.approx(fn(S, Y).item(), abs=1e-6)


@pytest.mark.parametrize("name", list(LOSSES))
def test_weights_scale_the_loss(name):
    fn = LOSSES[name]
    w = torch.full_like(S, 2.0)
    assert fn(S, Y, weights=w).item() == pytest.approx(2 * fn(S, Y).item(), rel=1e-5)


@pytest.mark.parametrize("name", list(LOSSES))
def test_gradient_raises_positive_score(name):
    s = S.clone().requires_grad_(True)
    LOSSES[name](s, Y).backward()
    assert s.grad[0, 0] < 0                         # descending the loss raises the positive


def test_errors():
    with pytest.raises(ConfigError, match="unknown loss 'hinge'"):
        get_loss("hinge")
    with pytest.raises(ConfigError, match="no option"):
        get_loss("ranknet", mu=3)
    with pytest.raises(ConfigError, match=">= 0"):
        LOSSES["softmax_ce"](S, torch.tensor([[1.0, -1.0, 0.0]]))
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        LOSSES["bce"](S, torch.tensor([[2.0, 0.0, 0.0]]))
    assert get_loss("lambdaloss", weighing_scheme="lambdaRank")(S, Y).item() > 0
