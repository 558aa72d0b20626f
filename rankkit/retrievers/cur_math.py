"""The numpy parts of CUR search: regularised pseudo-inverses and approximate scores.

Hand-written because no library does the ANNCUR step (Yadav et al., 2022):
approximate a query's scores for all items from its exact scores on a few
anchor items, ``q_anchor @ pinv(R[:, anchors]) @ R``, where ``R`` holds exact
scores of anchor queries against every item. Everything is batched over
queries: per-query anchor sets (adaptive or first-stage anchors) stack into
``(b, n_anchor_queries, m)`` intersection matrices whose SVDs numpy computes
in one call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: default Tikhonov strength, relative to the largest singular value
DEFAULT_RIDGE = 1e-3
#: singular values below this fraction of the largest count as zero (float32 scores)
RANK_TOL = 1e-5


@dataclass
class PinvReport:
    """How well-posed the intersection matrices were (largest over the batch)."""

    condition_number: float
    ridge: float
    min_rank: int


def _svd(c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.linalg.svd(np.asarray(c, dtype=np.float64), full_matrices=False)


def regularised_weights(q_anchor: np.ndarray, c: np.ndarray, ridge: float = DEFAULT_RIDGE
                        ) -> tuple[np.ndarray, PinvReport]:
    """Weights over the anchor queries: ``q_anchor @ pinv_ridge(c)`` per query.

    ``q_anchor`` is ``(b, m)`` exact scores on the anchor items; ``c`` is the
    intersection ``(n_aq, m)`` shared by all queries, or ``(b, n_aq, m)`` one per
    query. The pseudo-inverse is Tikhonov-regularised,
    ``V diag(s / (s^2 + lam)) U^T`` with ``lam = (ridge * s_max)^2``, so an
    ill-conditioned (or rank-deficient) ``c`` gives bounded weights instead of
    blowing up; the report says how ill-conditioned it was. Returns ``(b, n_aq)``.
    """
    q = np.asarray(q_anchor, dtype=np.float64)
    u, s, vt = _svd(c)
    s_max = s[..., :1] if s.shape[-1] else np.ones(s.shape[:-1] + (1,))
    lam = (ridge * s_max) ** 2
    inv = np.divide(s, s * s + lam, out=np.zeros_like(s), where=(s * s + lam) > 0)
    if c.ndim == 2:
        w = ((q @ vt.T) * inv) @ u.T
    else:
        t = np.einsum("bm,bkm->bk", q, vt) * inv
        w = np.einsum("bk,bnk->bn", t, u)
    tol = s_max * RANK_TOL
    rank = (s > tol).sum(axis=-1)
    with np.errstate(divide="ignore"):
        cond = np.where(s[..., -1] > 0, s[..., 0] / np.maximum(s[..., -1], 1e-300), np.inf)
    report = PinvReport(condition_number=float(np.max(cond)), ridge=float(ridge),
                        min_rank=int(np.min(rank)))
    return w.astype(np.float32), report


def approximate_scores(q_anchor: np.ndarray, c: np.ndarray, r: np.ndarray, ridge: float = DEFAULT_RIDGE
                       ) -> tuple[np.ndarray, PinvReport]:
    """Approximate scores ``(b, n_items)`` of every item: one product of the weights with ``r``."""
    w, report = regularised_weights(q_anchor, c, ridge)
    return w @ np.asarray(r, dtype=np.float32), report


def top_unscored(approx: np.ndarray, scored: np.ndarray, n: int) -> np.ndarray:
    """Per row, the ``n`` best columns of ``approx`` whose ``scored`` mask is False, best first.

    Rows with fewer than ``n`` unscored columns are padded with -1.
    """
    b, n_items = approx.shape
    n = int(min(n, n_items))
    if n <= 0:
        return np.empty((b, 0), dtype=np.int64)
    masked = np.where(scored, -np.inf, approx.astype(np.float64))
    part = np.argpartition(-masked, n - 1, axis=1)[:, :n] if n < n_items else \
        np.tile(np.arange(n_items), (b, 1))
    vals = np.take_along_axis(masked, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    out = np.take_along_axis(part, order, axis=1)
    return np.where(np.take_along_axis(vals, order, axis=1) == -np.inf, -1, out)
