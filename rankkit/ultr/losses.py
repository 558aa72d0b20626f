"""Click losses: naive, inverse-propensity-scored (IPS) and the Dual Learning Algorithm.

Every objective is called as ``objective(scores, clicks, mask, list_weights)`` on
``[B, L]`` tensors whose column ``k`` is display rank ``k + 1``; ``list_weights``
``[B]`` (optional) weighs whole lists, e.g. the session counts of
:meth:`ClickLog.aggregate` groups. They return a finite scalar: lists without
clicks contribute 0 and propensities are clipped, so a loss is never NaN.

Clipping: an inverse-propensity weight ``1/p`` is capped at ``max_weight``
(default 100, i.e. propensities below 0.01 count as 0.01). This bounds the
variance that rarely examined ranks add, at the price of under-weighting them
(a bias) when their true propensity is below ``1/max_weight``; a zero
propensity gets the cap instead of an infinite weight.

The listwise losses reuse :func:`rankkit.training.losses.softmax_ce` (target
``clicks * weights``) and the pairwise one :func:`rankkit.training.losses.ranknet`
(a clicked-over-unclicked pair weighted by the clicked item's weight, as in
IPS-RankSVM). The pointwise IPS loss cannot reuse ``pointwise_bce``: the unbiased
pointwise estimator (Saito et al., 2020) puts the weight inside the target,
``BCE(s, c/p)``, rather than on the whole item loss, and its target exceeds 1.

DLA (Ai et al., 2018): a propensity model (one logit per rank) is trained with
the same softmax loss as the ranker, each weighting the other's loss: the ranker
by inverse estimated propensities ``p_1/p_k``, the propensity model by inverse
relevance ``r_1/r_k`` (``r`` = softmax of the ranker's scores over the displayed
list, rank 1's document first). Weights are detached, so each loss trains only its
own model; estimated propensities are normalised to rank 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError

KINDS = ("listwise", "pointwise", "pairwise")


def _check(kind: str, max_weight: float) -> None:
    if kind not in KINDS:
        raise ConfigError(f"unknown IPS loss kind {kind!r} (choose {', '.join(KINDS)})")
    if not np.isfinite(max_weight) or max_weight < 1:
        raise ConfigError(f"max_weight must be a finite number >= 1, got {max_weight}")


def inverse_propensity(propensities: Any, max_weight: float = 100.0) -> Any:
    """``1 / max(p, 1/max_weight)``: clipped inverse propensities (numpy or torch)."""
    floor = 1.0 / float(max_weight)
    if isinstance(propensities, np.ndarray) or not hasattr(propensities, "clamp"):
        p = np.nan_to_num(np.asarray(propensities, dtype=np.float64), nan=0.0)
        return 1.0 / np.maximum(p, floor)
    return 1.0 / propensities.nan_to_num(0.0).clamp(min=floor)


def _prep(scores: Any, clicks: Any, mask: Any, list_weights: Any) -> tuple[Any, Any, Any, Any]:
    import torch

    clicks = clicks.to(scores.dtype)
    mask = torch.ones_like(scores, dtype=torch.bool) if mask is None else mask.to(torch.bool)
    if list_weights is None:
        lw = torch.ones(scores.shape[0], dtype=scores.dtype, device=scores.device)
    else:
        lw = list_weights.to(scores.dtype)
        lw = lw / lw.mean().clamp(min=1e-12)  # keep the scale of a per-session mean
    return scores, clicks.masked_fill(~mask, 0.0), mask, lw


def weighted_click_loss(scores: Any, clicks: Any, weights: Any, mask: Any = None,
                        list_weights: Any = None, kind: str = "listwise") -> Any:
    """The IPS loss of ``kind`` with per-item ``weights`` (inverse propensities)."""
    import torch.nn.functional as F

    from ..training.losses import ranknet, softmax_ce

    scores, clicks, mask, lw = _prep(scores, clicks, mask, list_weights)
    w = weights.to(scores.dtype) * lw[:, None]
    if kind == "listwise":
        return softmax_ce(scores, clicks, mask, w)
    if kind == "pairwise":
        return ranknet(scores, clicks, mask, w)
    if kind == "pointwise":
        target = clicks * weights.to(scores.dtype)
        per_item = F.binary_cross_entropy_with_logits(scores, target, reduction="none") * lw[:, None]
        return per_item[mask].sum() / mask.sum().clamp(min=1)
    raise ConfigError(f"unknown IPS loss kind {kind!r} (choose {', '.join(KINDS)})")


class NaiveClicks:
    """Clicks taken as relevance labels (no debiasing): the baseline."""

    name = "naive"

    def __init__(self, kind: str = "listwise"):
        _check(kind, 1.0)
        self.kind = kind

    def parameters(self) -> list[Any]:
        return []

    def __call__(self, scores: Any, clicks: Any, mask: Any = None, list_weights: Any = None) -> Any:
        import torch

        return weighted_click_loss(scores, clicks, torch.ones_like(scores), mask, list_weights, self.kind)


class IPS:
    """Inverse propensity scoring with known or estimated per-rank propensities.

    ``propensities[k]`` is the examination probability of rank ``k + 1`` (ranks
    past the end reuse the last value); weights are ``1/p`` clipped at ``max_weight``.
    """

    name = "ips"

    def __init__(self, propensities: Sequence[float], kind: str = "listwise", max_weight: float = 100.0):
        _check(kind, max_weight)
        p = np.asarray(propensities, dtype=np.float64)
        if p.ndim != 1 or len(p) == 0:
            raise ConfigError("propensities must be a non-empty list, one per rank")
        if np.any(np.isnan(p)) or np.any(p < 0):
            raise ConfigError("propensities must be numbers >= 0 (a zero is clipped to 1/max_weight)")
        self.propensities = p
        self.kind = kind
        self.max_weight = float(max_weight)

    def parameters(self) -> list[Any]:
        return []

    def weights(self, width: int) -> np.ndarray:
        p = self.propensities[np.minimum(np.arange(width), len(self.propensities) - 1)]
        return inverse_propensity(p, self.max_weight)

    def __call__(self, scores: Any, clicks: Any, mask: Any = None, list_weights: Any = None) -> Any:
        import torch

        w = torch.as_tensor(self.weights(scores.shape[-1]), dtype=scores.dtype, device=scores.device)
        return weighted_click_loss(scores, clicks, w.expand_as(scores), mask, list_weights, self.kind)


class DLA:
    """Dual Learning Algorithm: ranker and per-rank propensity model trained together.

    Add :meth:`parameters` (the propensity logits) to the optimiser next to the
    ranker's; :meth:`propensities` gives the current estimate, rank 1 = 1.
    """

    name = "dla"

    def __init__(self, width: int, max_weight: float = 100.0, propensity_weight: float = 1.0):
        import torch

        _check("listwise", max_weight)
        if width < 1:
            raise ConfigError(f"DLA needs at least one rank, got width {width}")
        self.width = int(width)
        self.max_weight = float(max_weight)
        self.propensity_weight = float(propensity_weight)
        self.logits = torch.nn.Parameter(torch.zeros(self.width))

    def parameters(self) -> list[Any]:
        return [self.logits]

    def propensities(self) -> np.ndarray:
        """Estimated examination propensity of each rank relative to rank 1."""
        import torch

        with torch.no_grad():
            return torch.exp(self.logits - self.logits[0]).double().cpu().numpy()

    def __call__(self, scores: Any, clicks: Any, mask: Any = None, list_weights: Any = None) -> Any:
        import torch

        from ..training.losses import softmax_ce

        scores, clicks, mask, lw = _prep(scores, clicks, mask, list_weights)
        if self.logits.device != scores.device:
            # the logits live outside the model, so whatever moved the ranker (Trainer, accelerate) did not move
            # them: follow the scores once, in place, so the optimiser keeps the same Parameter
            self.logits.data = self.logits.data.to(scores.device)
        width = scores.shape[-1]
        if width > self.width:
            raise ConfigError(f"DLA was built for {self.width} ranks but a list shows {width}")
        plogits = self.logits[:width].expand_as(scores)
        rel_prop = torch.exp(plogits - plogits[:, :1]).detach()
        rank_w = inverse_propensity(rel_prop, self.max_weight)
        rank_loss = softmax_ce(scores, clicks, mask, rank_w * lw[:, None])
        s = scores.detach().masked_fill(~mask, float("-inf"))
        first = mask.to(torch.int8).argmax(1, keepdim=True)   # rank 1, or the first rank shown
        rel = torch.exp(s - s.gather(1, first)).masked_fill(~mask, 1.0)  # r_k / r_1
        rel_w = inverse_propensity(rel, self.max_weight)
        exam_loss = softmax_ce(plogits, clicks, mask, rel_w * lw[:, None])
        return rank_loss + self.propensity_weight * exam_loss


def get_click_objective(name: str, width: int = 10, propensities: Sequence[float] | None = None,
                        kind: str = "listwise", max_weight: float = 100.0) -> Any:
    """``naive``, ``ips`` (needs ``propensities``) or ``dla`` as an objective object."""
    name = str(name).lower()
    if name == "naive":
        return NaiveClicks(kind)
    if name == "ips":
        if propensities is None:
            raise ConfigError("loss 'ips' needs propensities (known, or estimated e.g. by DLA)")
        return IPS(propensities, kind, max_weight)
    if name == "dla":
        if kind != "listwise":
            raise ConfigError("DLA is implemented with the listwise softmax loss (kind='listwise')")
        return DLA(width, max_weight)
    raise ConfigError(f"unknown click loss {name!r} (choose naive, ips, dla)")
