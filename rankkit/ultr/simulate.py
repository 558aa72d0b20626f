"""Click models and click-log simulation over a logging ranker's rankings.

Two models, both seeded and vectorised with numpy (100k sessions of 10 results
take well under a second):

- :class:`PositionBasedModel` (PBM): a result at rank ``k`` is examined with
  probability ``(1/k)^eta`` (or ``curve[k]^eta`` for a supplied curve) and
  clicked, once examined, with the relevance-to-click probability of its grade;
  examination and attraction are independent.
- :class:`CascadeModel`: the user reads top-down, clicks the first attractive
  result and stops, so a result is examined only if every result above it was
  not clicked.

Relevance to click (:func:`click_probability`), as in ULTRA:
``eps- + (eps+ - eps-) (2^y - 1) / (2^ymax - 1)`` with ULTRA's defaults
``eps- = 0.1`` (a click on an irrelevant result) and ``eps+ = 1.0``.

:func:`simulate_clicks` draws sessions over the rankings of a logging ranker
(a :class:`~rankkit.types.Run`, or any Stage applied to queries) for queries
with graded qrels, and returns a :class:`~rankkit.ultr.clicklog.ClickLog`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError, RankkitError
from .clicklog import ClickLog

#: ULTRA's examination curve for its position-based model (ranks 1..10; later ranks
#: reuse the last value), from ``ultra/utils/click_models.py``
#: (``PositionBiasedModel.original_exam_prob``, raised to ``eta`` there as here).
ULTRA_EXAMINATION: tuple[float, ...] = (0.68, 0.61, 0.48, 0.34, 0.28, 0.20, 0.11, 0.10, 0.08, 0.06)


def click_probability(grades: Any, max_grade: int, eps_minus: float = 0.1,
                      eps_plus: float = 1.0) -> np.ndarray:
    """P(click | examined) for relevance grades: ``eps- + (eps+ - eps-)(2^y - 1)/(2^ymax - 1)``.

    Grades are clipped into ``[0, max_grade]`` (a negative grade reads as 0).
    """
    if max_grade < 1:
        raise ConfigError(f"max_grade must be >= 1, got {max_grade}")
    if not 0.0 <= eps_minus <= eps_plus <= 1.0:
        raise ConfigError(f"need 0 <= eps_minus <= eps_plus <= 1, got {eps_minus}, {eps_plus}")
    y = np.clip(np.asarray(grades, dtype=np.float64), 0, max_grade)
    return eps_minus + (eps_plus - eps_minus) * (2.0 ** y - 1.0) / (2.0 ** max_grade - 1.0)


def _check_eta(eta: float) -> float:
    eta = float(eta)
    if not np.isfinite(eta) or eta < 0:
        raise ConfigError(f"eta must be a finite number >= 0, got {eta}")
    return eta


@dataclass
class PositionBasedModel:
    """PBM: ``P(click at rank k) = exam(k) * click_probability(y)``.

    ``exam(k) = (1/k)^eta`` by default; ``curve`` replaces ``1/k`` by a supplied
    examination curve (ranks past its end reuse its last value), e.g.
    ``curve="ultra"`` for :data:`ULTRA_EXAMINATION`.
    """

    eta: float = 1.0
    max_grade: int = 4
    eps_minus: float = 0.1
    eps_plus: float = 1.0
    curve: Sequence[float] | str | None = None

    name = "pbm"

    def __post_init__(self) -> None:
        self.eta = _check_eta(self.eta)
        if isinstance(self.curve, str):
            if self.curve.lower() != "ultra":
                raise ConfigError(f"unknown examination curve {self.curve!r} (choose 'ultra' or give numbers)")
            self.curve = ULTRA_EXAMINATION
        if self.curve is not None:
            c = np.asarray(self.curve, dtype=np.float64)
            if c.ndim != 1 or len(c) == 0 or not np.all((c >= 0) & (c <= 1)):
                raise ConfigError("an examination curve is a non-empty list of probabilities in [0, 1]")
            self.curve = tuple(float(x) for x in c)
        click_probability(0, self.max_grade, self.eps_minus, self.eps_plus)  # validates

    def examination(self, n: int) -> np.ndarray:
        """Examination probability of ranks ``1..n``."""
        ranks = np.arange(1, n + 1, dtype=np.float64)
        if self.curve is None:
            base = 1.0 / ranks
        else:
            c = np.asarray(self.curve)
            base = c[np.minimum(np.arange(n), len(c) - 1)]
        return base ** self.eta

    def click_rates(self, grades: np.ndarray) -> np.ndarray:
        """Expected click rate of each cell of a ``[sessions, ranks]`` grade matrix."""
        g = np.asarray(grades, dtype=np.float64)
        return self.examination(g.shape[-1]) * click_probability(g, self.max_grade, self.eps_minus, self.eps_plus)

    def sample(self, grades: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """0/1 clicks for a ``[sessions, ranks]`` grade matrix."""
        rates = self.click_rates(grades)
        return (rng.random(rates.shape) < rates).astype(np.int8)

    def describe(self) -> dict[str, Any]:
        return {"model": self.name, "eta": self.eta, "max_grade": self.max_grade,
                "eps_minus": self.eps_minus, "eps_plus": self.eps_plus,
                "curve": list(self.curve) if self.curve is not None else None}


@dataclass
class CascadeModel:
    """Cascade: read top-down, click the first attractive result, stop.

    ``P(click at k) = a_k * prod_{j<k} (1 - a_j)`` with ``a = click_probability(y)``.
    """

    max_grade: int = 4
    eps_minus: float = 0.1
    eps_plus: float = 1.0

    name = "cascade"

    def __post_init__(self) -> None:
        click_probability(0, self.max_grade, self.eps_minus, self.eps_plus)

    def click_rates(self, grades: np.ndarray) -> np.ndarray:
        a = click_probability(grades, self.max_grade, self.eps_minus, self.eps_plus)
        reach = np.cumprod(np.concatenate([np.ones_like(a[..., :1]), 1.0 - a[..., :-1]], axis=-1), axis=-1)
        return a * reach

    def sample(self, grades: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        a = click_probability(grades, self.max_grade, self.eps_minus, self.eps_plus)
        attractive = rng.random(a.shape) < a
        first = attractive & (np.cumsum(attractive, axis=-1) == 1)
        return first.astype(np.int8)

    def describe(self) -> dict[str, Any]:
        return {"model": self.name, "max_grade": self.max_grade,
                "eps_minus": self.eps_minus, "eps_plus": self.eps_plus}


ClickModel = PositionBasedModel | CascadeModel


def get_click_model(name: str, **options: Any) -> ClickModel:
    """A click model by name (``pbm`` or ``cascade``); unknown names are a ConfigError."""
    models = {"pbm": PositionBasedModel, "cascade": CascadeModel}
    cls = models.get(str(name).lower())
    if cls is None:
        raise ConfigError(f"unknown click model {name!r} (choose {', '.join(models)})")
    if cls is CascadeModel:
        options.pop("eta", None)
        options.pop("curve", None)
    return cls(**options)


def simulate_clicks(logging: Any, qrels: Mapping[str, Mapping[str, int]], n_sessions: int,
                    model: ClickModel | None = None, k: int = 10, seed: int = 0,
                    queries: Mapping[str, str] | None = None) -> ClickLog:
    """Draw ``n_sessions`` sessions over the top ``k`` of a logging ranker's rankings.

    ``logging`` is a Run, or any Stage (then ``queries`` are required and the
    Stage is applied to them). Each session picks a query uniformly among the
    queries that have qrels and a non-empty ranking; unjudged documents count as
    grade 0. Returns the sessions as a :class:`ClickLog` (the displayed order is
    the logging ranking, rank 1 first).
    """
    from ..types import Run, as_run

    if n_sessions < 1:
        raise ConfigError(f"n_sessions must be >= 1, got {n_sessions}")
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    model = model or PositionBasedModel()
    if not isinstance(logging, Run):
        if queries is None:
            if hasattr(logging, "transform"):
                raise ConfigError("a logging Stage needs the queries to rank (queries=...)")
            raise ConfigError(f"logging ranker must be a Run or a Stage, got {type(logging).__name__}")
        logging = as_run(logging(queries))
    qids = [q for q in logging.qids if q in qrels and len(logging.docids(q)) > 0]
    if not qids:
        raise RankkitError("no query has both qrels and a non-empty logging ranking: nothing to simulate")
    width = min(k, max(len(logging.docids(q)) for q in qids))
    docs = np.full((len(qids), width), "", dtype=object)
    grades = np.zeros((len(qids), width), dtype=np.float64)
    lengths = np.zeros(len(qids), dtype=np.int64)
    for i, q in enumerate(qids):
        d = logging.docids(q)[:width]
        judged = qrels[q]
        docs[i, :len(d)] = d
        grades[i, :len(d)] = [max(float(judged.get(x, 0)), 0.0) for x in d]
        lengths[i] = len(d)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(qids), size=n_sessions)
    clicks = model.sample(grades[pick], rng)
    mask = np.arange(width)[None, :] < lengths[pick][:, None]
    clicks = np.where(mask, clicks, 0).astype(np.int8)
    text = {q: queries[q] for q in qids if q in queries} if queries is not None else {}
    return ClickLog(qids=np.asarray(qids, dtype=object)[pick], docids=docs[pick], clicks=clicks,
                    lengths=lengths[pick], queries=text)
