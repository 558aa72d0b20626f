"""Learning-to-rank feature data and a small neural ranker trained from clicks.

:func:`read_svmlight` reads SVMlight / LibSVM ranking files (``label idx:value ...``)
with query groups from ``qid:`` tokens or from a ``<file>.query`` file of group
sizes (the LightGBM layout). :class:`FeatureRanker` is an MLP over standardised
features (statistics fitted on the training data only).

:func:`train_on_clicks` trains it from a :class:`~rankkit.ultr.clicklog.ClickLog`
with any objective of :mod:`rankkit.ultr.losses`; :func:`train_on_labels` trains
the same model on true grades (the oracle). The loop is a short plain PyTorch
loop rather than a library trainer because DLA updates a second model (the
propensities) jointly with the ranker, each from the other's detached output,
which no ranking library's training loop offers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataFormatError, RankkitError
from ..io import PathLike, open_text, require_file


@dataclass
class LtrData:
    """Feature rows grouped by query: ``X [N, F]``, grades ``y [N]``, ``offsets [Q + 1]``."""

    X: np.ndarray
    y: np.ndarray
    offsets: np.ndarray
    qids: list[str]
    docids: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.docids is None:
            self.docids = np.array([f"{self.qids[i]}-{j}" for i in range(len(self.qids))
                                    for j in range(self.offsets[i + 1] - self.offsets[i])], dtype=object)

    def __len__(self) -> int:
        return len(self.qids)

    def rows(self, i: int) -> slice:
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def query_index(self) -> np.ndarray:
        """``[N]``: the query (0-based) of each row."""
        return np.repeat(np.arange(len(self.qids)), np.diff(self.offsets))

    def qrels(self) -> Any:
        """Grades as :class:`~rankkit.types.Qrels` (every row judged, grade 0 included)."""
        from ..types import Qrels

        return Qrels({q: {str(d): int(g) for d, g in zip(self.docids[self.rows(i)], self.y[self.rows(i)])}
                      for i, q in enumerate(self.qids)})

    def run(self, scores: np.ndarray, name: str | None = None) -> Any:
        """A :class:`~rankkit.types.Run` ranking each query's rows by ``scores``."""
        from ..types import Run

        return Run.from_lists(self.qids, [self.docids[self.rows(i)] for i in range(len(self))],
                              [scores[self.rows(i)] for i in range(len(self))], name=name)

    def row_of(self) -> dict[str, int]:
        return {str(d): i for i, d in enumerate(self.docids.tolist())}


def read_svmlight(path: PathLike, n_features: int | None = None, query_file: PathLike | None = None) -> LtrData:
    """Read an SVMlight ranking file; groups from ``qid:`` or ``<path>.query`` sizes.

    Feature indices are kept as written (column ``i`` holds feature ``i``; index 0
    is allowed). ``n_features`` fixes the width so test and train files align.
    """
    p = require_file(path, "SVMlight file")
    labels: list[float] = []
    rows: list[tuple[np.ndarray, np.ndarray]] = []
    qid_tokens: list[str] = []
    with open_text(p, "SVMlight file") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            try:
                labels.append(float(parts[0]))
            except ValueError:
                raise DataFormatError(f"label {parts[0]!r} is not a number", p, lineno) from None
            idx, val = [], []
            for tok in parts[1:]:
                key, sep, value = tok.partition(":")
                if not sep:
                    raise DataFormatError(f"expected index:value, found {tok!r}", p, lineno)
                if key == "qid":
                    qid_tokens.append(value)
                    continue
                try:
                    idx.append(int(key))
                    val.append(float(value))
                except ValueError:
                    raise DataFormatError(f"bad feature {tok!r} (expected integer:number)", p, lineno) from None
            if idx and min(idx) < 0:
                raise DataFormatError(f"negative feature index {min(idx)}", p, lineno)
            rows.append((np.asarray(idx, dtype=np.int64), np.asarray(val, dtype=np.float32)))
    if not rows:
        raise DataFormatError("no data lines", p)
    width = max((int(i.max()) + 1 for i, _ in rows if len(i)), default=1)
    if n_features is not None:
        if width > n_features:
            raise DataFormatError(f"feature index {width - 1} exceeds n_features={n_features}", p)
        width = n_features
    X = np.zeros((len(rows), width), dtype=np.float32)
    for r, (i, v) in enumerate(rows):
        X[r, i] = v
    y = np.asarray(labels)
    qfile = Path(query_file) if query_file is not None else Path(str(p) + ".query")
    if qfile.exists():
        sizes = np.loadtxt(qfile, dtype=np.int64, ndmin=1)
        if sizes.sum() != len(rows) or np.any(sizes < 1):
            raise DataFormatError(f"group sizes sum to {int(sizes.sum())} but {p} has {len(rows)} rows", qfile)
        qids = [f"q{i}" for i in range(len(sizes))]
    elif len(qid_tokens) == len(rows):
        change = np.flatnonzero([i == 0 or qid_tokens[i] != qid_tokens[i - 1] for i in range(len(rows))])
        sizes = np.diff(np.append(change, len(rows)))
        qids = [qid_tokens[i] for i in change]
        if len(set(qids)) != len(qids):
            raise DataFormatError("rows of one qid must be contiguous", p)
    else:
        raise DataFormatError(f"no query groups: add qid: tokens or a group-size file {qfile.name}", p)
    return LtrData(X, y, np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64), qids)


@dataclass
class Standardizer:
    """Per-feature z-scores with statistics from the training data (constant features -> 0)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray) -> Standardizer:
        std = X.std(0)
        return cls(X.mean(0), np.where(std > 1e-8, std, 1.0))

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.mean) / self.std).astype(np.float32)


class FeatureRanker:
    """An MLP scoring standardised feature vectors (one score per row)."""

    def __init__(self, n_features: int, hidden: tuple[int, ...] = (64, 32), dropout: float = 0.1,
                 standardizer: Standardizer | None = None, seed: int = 0):
        import torch

        torch.manual_seed(seed)
        layers: list[Any] = []
        width = n_features
        for h in hidden:
            layers += [torch.nn.Linear(width, h), torch.nn.ELU(), torch.nn.Dropout(dropout)]
            width = h
        layers.append(torch.nn.Linear(width, 1))
        self.model = torch.nn.Sequential(*layers)
        self.standardizer = standardizer
        self.n_features = n_features

    def score(self, X: np.ndarray) -> np.ndarray:
        import torch

        if X.shape[1] != self.n_features:
            raise ConfigError(f"ranker expects {self.n_features} features, got {X.shape[1]}")
        Z = self.standardizer(X) if self.standardizer is not None else X.astype(np.float32)
        self.model.eval()
        with torch.no_grad():
            return self.model(torch.from_numpy(Z)).squeeze(-1).double().numpy()

    def rank(self, data: LtrData, name: str | None = None) -> Any:
        return data.run(self.score(data.X), name)


@dataclass
class TrainResult:
    ranker: FeatureRanker
    losses: list[float]
    propensities: np.ndarray | None = None
    skipped: dict[str, int] = field(default_factory=dict)


def _fit(ranker: FeatureRanker, Z: Any, doc_index: np.ndarray, targets: np.ndarray, list_weights: np.ndarray,
         loss_fn: Any, extra_params: list[Any], epochs: int, batch_size: int, lr: float,
         weight_decay: float, seed: int, extra_lr: float | None = None) -> list[float]:
    import torch

    gen = torch.Generator().manual_seed(seed)
    idx = torch.from_numpy(doc_index)
    mask = idx >= 0
    gather = idx.clamp(min=0)
    T = torch.from_numpy(targets.astype(np.float32))
    W = torch.from_numpy(list_weights.astype(np.float32))
    opt = torch.optim.Adam([{"params": ranker.model.parameters(), "weight_decay": weight_decay},
                            {"params": extra_params, "weight_decay": 0.0, "lr": extra_lr or lr}], lr=lr)
    history = []
    n = len(doc_index)
    for _ in range(epochs):
        ranker.model.train()
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, batch_size):
            b = order[start:start + batch_size]
            scores = ranker.model(Z[gather[b]]).squeeze(-1)
            loss = loss_fn(scores, T[b], mask[b], W[b])
            if not torch.isfinite(loss):
                raise RankkitError("training produced a non-finite loss; lower the learning rate or max_weight")
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(ranker.model.parameters(), 5.0)
            opt.step()
            total += float(loss.detach()) * len(b)
        history.append(total / n)
    return history


def train_on_clicks(log: Any, data: LtrData, objective: Any, epochs: int = 30, batch_size: int = 32,
                    lr: float = 1e-3, weight_decay: float = 1e-4, hidden: tuple[int, ...] = (64, 32),
                    seed: int = 0, aggregate: bool | None = None, propensity_lr: float = 0.05) -> TrainResult:
    """Train a :class:`FeatureRanker` on a click log with a click objective.

    Documents are looked up by docid in ``data`` (a docid absent from it is a
    RankkitError naming the session). ``aggregate`` (default: on for every loss
    but pairwise) trains on :meth:`ClickLog.aggregate` groups weighted by session
    counts, which is exact for losses linear in the clicks; sessions without clicks
    are then kept (they weigh in the group means). ``propensity_lr`` is the Adam
    learning rate of the objective's own parameters (DLA's propensity logits).
    """
    import torch

    kind = getattr(objective, "kind", "listwise")
    aggregate = kind != "pairwise" if aggregate is None else aggregate
    if aggregate:
        agg = log.aggregate()
        docids, targets, weights, lengths = agg.docids, agg.ctr, agg.counts.astype(np.float64), agg.lengths
    else:
        docids, targets, weights, lengths = log.docids, log.clicks.astype(np.float64), np.ones(len(log)), log.lengths
    row = data.row_of()
    flat = docids.ravel().tolist()
    index = np.fromiter((row.get(d, -1) for d in flat), dtype=np.int64, count=len(flat)).reshape(docids.shape)
    shown = np.arange(docids.shape[1])[None, :] < lengths[:, None]
    missing = shown & (index < 0)
    if missing.any():
        s, k = map(int, np.argwhere(missing)[0])
        raise RankkitError(f"{int(missing.sum())} displayed documents are absent from the feature data "
                           f"(first: {docids[s, k]!r} in list {s + 1}, rank {k + 1})")
    index = np.where(shown, index, -1)
    std = Standardizer.fit(data.X)
    ranker = FeatureRanker(data.X.shape[1], hidden, standardizer=std, seed=seed)
    Z = torch.from_numpy(std(data.X))
    losses = _fit(ranker, Z, index, targets, weights, objective, list(objective.parameters()), epochs,
                  batch_size, lr, weight_decay, seed, propensity_lr)
    props = objective.propensities() if hasattr(objective, "propensities") and callable(objective.propensities) \
        else None
    return TrainResult(ranker, losses, props, dict(getattr(log, "skipped", {})))


def train_on_labels(data: LtrData, epochs: int = 30, batch_size: int = 16, lr: float = 1e-3,
                    weight_decay: float = 1e-4, hidden: tuple[int, ...] = (64, 32), seed: int = 0) -> TrainResult:
    """The oracle: the same ranker trained on true grades (listwise softmax over ``2^y - 1`` gains)."""
    import torch

    from ..training.losses import softmax_ce

    sizes = np.diff(data.offsets)
    width = int(sizes.max())
    index = np.full((len(data), width), -1, dtype=np.int64)
    gains = np.zeros((len(data), width))
    for i in range(len(data)):
        r = data.rows(i)
        index[i, :sizes[i]] = np.arange(r.start, r.stop)
        gains[i, :sizes[i]] = 2.0 ** data.y[r] - 1.0
    std = Standardizer.fit(data.X)
    ranker = FeatureRanker(data.X.shape[1], hidden, standardizer=std, seed=seed)

    def loss(scores: Any, target: Any, mask: Any, w: Any) -> Any:
        return softmax_ce(scores, target, mask)

    losses = _fit(ranker, torch.from_numpy(std(data.X)), index, gains, np.ones(len(data)), loss, [],
                  epochs, batch_size, lr, weight_decay, seed)
    return TrainResult(ranker, losses)
