"""Learning-to-rank losses as pure functions over score lists.

Every loss takes ``scores [B, L]`` (model outputs, one list per query),
``labels [B, L]`` (relevance grades; 0 = not relevant), an optional boolean
``mask [B, L]`` (True = a real item, False = padding) and optional per-item
``weights [B, L]`` (e.g. inverse propensities for unbiased learning to rank),
in the uniform style of allRank. They return a scalar tensor. ``LOSSES`` maps
a name to the function; :func:`get_loss` turns an unknown name into a
``ConfigError``. :func:`check_labels` is the one label-range check (labels
>= 0; within [0, 1] for ``bce``), used by the losses and, before any model
loads, on the training data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataFormatError

Tensor = torch.Tensor
_EPS = 1e-10
#: loss name -> largest label it accepts (every loss needs labels >= 0)
MAX_LABEL: dict[str, float] = {"bce": 1.0}


class LabelRangeError(DataFormatError, ConfigError):
    """A relevance label outside the range a loss accepts (bad data and a bad loss input)."""


def check_labels(labels: Any, loss: str = "", where: str = "") -> None:
    """Raise ``LabelRangeError`` unless every label is finite, >= 0 and within ``MAX_LABEL[loss]``.

    ``where`` prefixes the message (e.g. ``"query '3': "``).
    """
    t = torch.as_tensor(labels, dtype=torch.float64).reshape(-1)
    bad = t[~torch.isfinite(t) | (t < 0)]
    if bad.numel():
        raise LabelRangeError(f"{where}relevance label {bad[0].item():g} is outside the expected range (>= 0)")
    top = MAX_LABEL.get(str(loss).lower())
    if top is not None and bool((t > top).any()):
        raise LabelRangeError(
            f"{where}label {t[t > top][0].item():g} > {top:g} but loss {loss!r} needs labels in [0, {top:g}] "
            "(scale graded labels first or use a listwise loss: listnet, lambdaloss)")


def _prepare(scores: Tensor, labels: Tensor, mask: Tensor | None,
             weights: Tensor | None, loss: str = "") -> tuple[Tensor, Tensor, Tensor, Tensor]:
    if scores.dim() == 1:
        scores, labels = scores[None], labels[None]
        mask = mask[None] if mask is not None else None
        weights = weights[None] if weights is not None else None
    if scores.shape != labels.shape:
        raise ConfigError(f"scores {tuple(scores.shape)} and labels {tuple(labels.shape)} differ in shape")
    labels = labels.to(scores.dtype)
    mask = torch.ones_like(scores, dtype=torch.bool) if mask is None else mask.to(torch.bool)
    weights = torch.ones_like(scores) if weights is None else weights.to(scores.dtype)
    for name, t in (("mask", mask), ("weights", weights)):
        if t.shape != scores.shape:
            raise ConfigError(f"{name} {tuple(t.shape)} does not match scores {tuple(scores.shape)}")
    check_labels(labels.detach()[mask], loss)
    return scores, labels, mask, weights


def pointwise_bce(scores: Tensor, labels: Tensor, mask: Tensor | None = None,
                  weights: Tensor | None = None) -> Tensor:
    """Binary cross-entropy of each score (a logit) against a label in [0, 1]; mean over items."""
    scores, labels, mask, weights = _prepare(scores, labels, mask, weights, loss="bce")
    per_item = F.binary_cross_entropy_with_logits(scores, labels, reduction="none") * weights
    return per_item[mask].sum() / mask.sum().clamp(min=1)


def ranknet(scores: Tensor, labels: Tensor, mask: Tensor | None = None,
            weights: Tensor | None = None, sigma: float = 1.0) -> Tensor:
    """Pairwise RankNet: ``log(1 + exp(-sigma (s_i - s_j)))`` for every pair with ``y_i > y_j``.

    A pair is weighted by the weight of its more relevant item; mean over pairs.
    """
    scores, labels, mask, weights = _prepare(scores, labels, mask, weights)
    pair_mask = (labels[:, :, None] > labels[:, None, :]) & mask[:, :, None] & mask[:, None, :]
    diffs = sigma * (scores[:, :, None] - scores[:, None, :])
    losses = F.softplus(-diffs) * weights[:, :, None]
    return losses[pair_mask].sum() / pair_mask.sum().clamp(min=1)


def softmax_ce(scores: Tensor, labels: Tensor, mask: Tensor | None = None,
               weights: Tensor | None = None) -> Tensor:
    """Listwise softmax cross-entropy: ``-sum_i y_i w_i log softmax(s)_i``; mean over lists.

    With one positive per list this is the InfoNCE / "localised contrastive" loss
    of cross-encoder training.
    """
    scores, labels, mask, weights = _prepare(scores, labels, mask, weights)
    logp = torch.log_softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    target = (labels * weights).masked_fill(~mask, 0.0)
    per_list = -(target * logp.masked_fill(~mask, 0.0)).sum(-1)
    return per_list.mean()


def listnet(scores: Tensor, labels: Tensor, mask: Tensor | None = None,
            weights: Tensor | None = None) -> Tensor:
    """ListNet (top-one): cross-entropy between ``softmax(labels)`` and ``softmax(scores)``."""
    scores, labels, mask, weights = _prepare(scores, labels, mask, weights)
    neg_inf = float("-inf")
    p_true = torch.softmax(labels.masked_fill(~mask, neg_inf), dim=-1)
    logp = torch.log_softmax(scores.masked_fill(~mask, neg_inf), dim=-1).masked_fill(~mask, 0.0)
    per_list = -(p_true * weights * logp).sum(-1)
    return per_list.mean()


def _lambda_weights(scheme: str | None, gains: Tensor, disc: Tensor, mu: float) -> Tensor | float:
    """Pair weights of the LambdaLoss framework (Wang et al. 2018), as in allRank."""
    if scheme is None or scheme == "none":
        return 1.0
    n = gains.shape[1]
    pos = torch.arange(1, n + 1, device=gains.device)
    lambdarank = torch.abs(1.0 / disc[:, :, None] - 1.0 / disc[:, None, :]) * \
        torch.abs(gains[:, :, None] - gains[:, None, :])
    if scheme == "lambdaRank":
        return lambdarank
    if scheme == "ndcgLoss1":
        return (gains / disc)[:, :, None]
    delta = torch.abs(pos[:, None] - pos[None, :])
    d_all = torch.log2(1.0 + torch.arange(0, n + 1, device=gains.device, dtype=gains.dtype))
    inv = torch.where(d_all > 0, 1.0 / d_all.clamp(min=_EPS), torch.zeros_like(d_all))
    deltas = torch.abs(inv[delta] - inv[(delta + 1).clamp(max=n)])
    deltas = deltas.masked_fill(delta == 0, 0.0)
    ndcg2 = deltas[None] * torch.abs(gains[:, :, None] - gains[:, None, :])
    if scheme == "ndcgLoss2":
        return ndcg2
    if scheme == "ndcgLoss2PP":
        return mu * ndcg2 + lambdarank
    raise ConfigError(f"unknown LambdaLoss weighing scheme {scheme!r} "
                      "(choose ndcgLoss2PP, ndcgLoss2, ndcgLoss1, lambdaRank, none)")


def lambdaloss(scores: Tensor, labels: Tensor, mask: Tensor | None = None,
               weights: Tensor | None = None, weighing_scheme: str | None = "ndcgLoss2PP",
               k: int | None = None, sigma: float = 1.0, mu: float = 10.0,
               reduction: str = "mean") -> Tensor:
    """LambdaLoss (allRank-style): ``-sum w_ij log2 sigmoid(sigma (s_i - s_j))`` over pairs.

    Items are sorted by score; pairs are those with ``y_i > y_j`` (both in the
    top ``k`` when given) and ``w_ij`` comes from the weighing scheme
    (NDCG-Loss2++ by default; ``None`` gives a log2 RankNet). Per-item weights
    multiply the weight of the pair's more relevant item. ``reduction`` is
    ``"mean"`` over pairs or ``"sum"``.
    """
    scores, labels, mask, weights = _prepare(scores, labels, mask, weights)
    if reduction not in ("mean", "sum"):
        raise ConfigError(f"unknown reduction {reduction!r} (choose mean or sum)")
    n = scores.shape[1]
    k = n if k is None else min(int(k), n)
    s = scores.masked_fill(~mask, float("-inf"))
    y = labels.masked_fill(~mask, float("-inf"))
    s_sorted, order = s.sort(descending=True, dim=-1)
    y_by_pred = torch.gather(y, 1, order)
    w_by_pred = torch.gather(weights, 1, order)
    y_ideal, _ = y.sort(descending=True, dim=-1)
    diffs = y_by_pred[:, :, None] - y_by_pred[:, None, :]
    pair_mask = torch.isfinite(diffs)
    if weighing_scheme != "ndcgLoss1":
        pair_mask = pair_mask & (diffs > 0)
    topk = torch.zeros(n, n, dtype=torch.bool, device=scores.device)
    topk[:k, :k] = True
    pair_mask = pair_mask & topk
    y_by_pred = y_by_pred.clamp(min=0.0)
    y_ideal = y_ideal.clamp(min=0.0)
    disc = torch.log2(1.0 + torch.arange(1, n + 1, device=scores.device, dtype=scores.dtype))[None, :]
    max_dcg = ((2.0 ** y_ideal - 1.0) / disc)[:, :k].sum(-1).clamp(min=_EPS)
    gains = (2.0 ** y_by_pred - 1.0) / max_dcg[:, None]
    pw = _lambda_weights(weighing_scheme, gains, disc, mu)
    sd = (s_sorted[:, :, None] - s_sorted[:, None, :]).nan_to_num(0.0).clamp(-1e8, 1e8)
    probs = (torch.sigmoid(sigma * sd).clamp(min=_EPS) ** pw).clamp(min=_EPS)
    losses = -torch.log2(probs) * w_by_pred[:, :, None]
    picked = losses[pair_mask]
    if reduction == "sum":
        return picked.sum()
    return picked.sum() / pair_mask.sum().clamp(min=1)


#: loss name -> function (one line per loss)
LOSSES: dict[str, Callable[..., Tensor]] = {
    "bce": pointwise_bce,
    "ranknet": ranknet,
    "softmax_ce": softmax_ce,
    "listnet": listnet,
    "lambdaloss": lambdaloss,
}


def get_loss(name: str, **options: Any) -> Callable[..., Tensor]:
    """The loss called ``name`` with ``options`` bound (e.g. ``weighing_scheme=``)."""
    fn = LOSSES.get(str(name).lower())
    if fn is None:
        raise ConfigError(f"unknown loss {name!r} (choose {', '.join(LOSSES)})")
    if not options:
        return fn
    import functools
    import inspect

    accepted = set(inspect.signature(fn).parameters) - {"scores", "labels", "mask", "weights"}
    bad = set(options) - accepted
    if bad:
        raise ConfigError(f"loss {name!r} has no option(s) {sorted(bad)} (options: {sorted(accepted) or 'none'})")
    return functools.partial(fn, **options)
