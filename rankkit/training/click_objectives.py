"""Click objectives for text rerankers: ``naive``, ``ips`` and ``dla``.

They train a cross-encoder on :class:`~rankkit.training.click_data.ClickList` s
(the ``clicks`` data source) with the click losses of
:mod:`rankkit.ultr.losses`: every list becomes one row of a ``[B, L]`` score
matrix whose column ``k`` is display rank ``k + 1`` (a rank whose document
was dropped is masked), and the list's session count is its list weight.

Config (either form)::

    loss: {name: dla, options: {propensity_lr: 0.05}}   # a loss block naming a click objective
    objective: {name: dla, options: {propensity_lr: 0.05}}

Options:

- all: ``kind`` (``listwise`` softmax, ``pointwise`` BCE, ``pairwise`` RankNet;
  DLA is listwise only; the pairwise loss is not linear in the clicks, so give
  its source ``aggregate: false``) and ``max_weight`` (inverse propensities are clipped
  there: a propensity below ``1/max_weight``, zero included, counts as
  ``1/max_weight``; default 100);
- ``ips``: ``propensities`` (required): the known examination probability of
  ranks 1, 2, ... (ranks past the list reuse the last value);
- ``dla``: ``ranks`` (propensities estimated; default the deepest rank in the
  data), ``propensity_lr`` (Adam learning rate of the propensity logits,
  default 0.05: the ranker's LoRA rate would move them by a few hundredths in
  a few hundred steps), ``propensity_weight`` (weight of the propensity loss).
  The rate matters: a propensity model much faster than the ranker fits the
  relevance-confounded CTR curve as position bias before the ranker can correct
  it (SciFact, 100 steps from a new head: 0.1 gave propensity 0.02 at rank 10
  against a true 0.1 and wrecked the ranker; 0.01 stayed near naive;
  eval/RESULTS.md).

DLA's propensity logits are trained by the Trainer's own optimiser (an extra
parameter group, :meth:`Objective.parameter_groups`: AdamW, so its rate follows
the ranker's warmup and decay, where ULTRA keeps Adagrad at a constant rate; the
group is outside the Trainer's gradient clipping), saved in every checkpoint
and restored on resume (:meth:`Objective.callbacks`), and the final estimate
(relative to rank 1) is written to the trained folder's manifest under
``training.objective.propensities``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, RankkitError
from .objectives import Objective, group_scores, register_objective

STATE_FILE = "click_objective.json"


class ClickObjective(Objective):
    """Base: collate click lists into ``[B, L]`` rank-indexed tensors; the loss is ``self.loss``."""

    loss_name = "naive"

    def __init__(self, kind: str = "listwise", max_weight: float = 100.0):
        from ..ultr.losses import _check

        super().__init__()
        _check(str(kind), float(max_weight))
        self.kind = str(kind)
        self.max_weight = float(max_weight)
        self.width = 0
        self.loss: Any = None
        self.options = {"loss": self.loss_name, "kind": self.kind, "max_weight": self.max_weight}

    def build_loss(self, width: int) -> Any:
        from ..ultr.losses import NaiveClicks

        return NaiveClicks(self.kind)

    def check(self, examples: Sequence[Any]) -> None:
        from .click_data import ClickList

        bad = next((e for e in examples if not isinstance(e, ClickList)), None)
        if bad is not None:
            raise ConfigError(f"objective {self.loss_name!r} trains on click logs (data: source: clicks), "
                              f"got a {type(bad).__name__}")
        self.width = max(e.positions[-1] for e in examples)
        if self.loss is None:
            self.loss = self.build_loss(self.width)

    def collate(self, examples: Sequence[Any]) -> dict[str, Any]:
        """Tokenised pairs of all lists plus ``labels`` (clicks), ``group_mask`` and ``list_weights``."""
        import torch

        lists = list(examples)   # whole displayed lists: depth is the source's max_rank, not group_size
        width = max(e.positions[-1] for e in lists)
        enc = self.encode_pairs(lists)
        clicks = torch.zeros(len(lists), width)
        mask = torch.zeros(len(lists), width, dtype=torch.bool)
        for b, e in enumerate(lists):
            cols = torch.tensor(e.positions) - 1
            clicks[b, cols] = torch.tensor(e.clicks, dtype=torch.float32)
            mask[b, cols] = True
        weights = torch.tensor([e.weight for e in lists], dtype=torch.float32)
        return {**enc, "labels": clicks, "group_mask": mask, "list_weights": weights}

    def scores(self, model: Any, batch: dict[str, Any]) -> tuple[Any, Any]:
        """(scores [B, L], column k = rank k + 1, zeros where nothing was shown; model outputs).

        Pairs are in list order and ranks ascend within a list: row-major mask order.
        """
        return group_scores(model, batch, ("labels", "group_mask", "list_weights"))

    def compute_loss(self, model: Any, batch: dict[str, Any]) -> tuple[Any, Any]:
        import torch

        if self.loss is None:
            raise RankkitError(f"objective {self.loss_name!r}: call check(examples) before training")
        scores, out = self.scores(model, batch)
        loss = self.loss(scores, batch["labels"], batch["group_mask"], batch["list_weights"])
        if not torch.isfinite(loss):
            raise RankkitError(f"click objective {self.loss_name!r} produced a non-finite loss; "
                               "lower the learning rate or max_weight")
        return loss, out


class NaiveClickObjective(ClickObjective):
    """Clicks taken as relevance labels, no debiasing (the baseline)."""

    loss_name = "naive"


class IPSClickObjective(ClickObjective):
    """Inverse propensity scoring with known per-rank propensities, clipped at ``max_weight``."""

    loss_name = "ips"

    def __init__(self, propensities: Sequence[float] | None = None, kind: str = "listwise",
                 max_weight: float = 100.0):
        from ..ultr.losses import IPS

        super().__init__(kind, max_weight)
        if propensities is None:
            raise ConfigError("objective 'ips' needs 'propensities' (the examination probability of "
                              "ranks 1, 2, ...)")
        if isinstance(propensities, (str, bytes)) or not isinstance(propensities, Sequence):
            raise ConfigError(f"'propensities' must be a list of numbers, got {propensities!r}")
        try:
            values = [float(p) for p in propensities]
        except (TypeError, ValueError):
            raise ConfigError(f"'propensities' must be a list of numbers, got {propensities!r}") from None
        self.ips = IPS(values, self.kind, self.max_weight)   # validates (>= 0, non-empty)
        self.options["propensities"] = values

    def build_loss(self, width: int) -> Any:
        return self.ips


class DLAObjective(ClickObjective):
    """Dual Learning Algorithm: the ranker and a per-rank propensity model trained together."""

    loss_name = "dla"

    def __init__(self, ranks: int | None = None, max_weight: float = 100.0, propensity_lr: float = 0.05,
                 propensity_weight: float = 1.0, kind: str = "listwise"):
        if kind != "listwise":
            raise ConfigError("objective 'dla' uses the listwise softmax loss (kind: listwise)")
        super().__init__(kind, max_weight)
        if ranks is not None and int(ranks) < 1:
            raise ConfigError(f"'ranks' must be >= 1, got {ranks}")
        if not (math.isfinite(float(propensity_lr)) and float(propensity_lr) > 0):
            raise ConfigError(f"'propensity_lr' must be a positive number, got {propensity_lr}")
        self.ranks = int(ranks) if ranks is not None else None
        self.propensity_lr = float(propensity_lr)
        self.propensity_weight = float(propensity_weight)
        self.options.update(ranks=self.ranks, propensity_lr=self.propensity_lr,
                            propensity_weight=self.propensity_weight)

    def build_loss(self, width: int) -> Any:
        from ..ultr.losses import DLA

        if self.ranks is not None and width > self.ranks:
            raise ConfigError(f"objective 'dla' estimates {self.ranks} ranks but the data shows rank {width} "
                              f"(raise 'ranks' or set the source's max_rank)")
        return DLA(self.ranks or width, self.max_weight, self.propensity_weight)

    def check(self, examples: Sequence[Any]) -> None:
        had = self.loss
        super().check(examples)
        if had is None and self.ranks is None:
            self.ranks = self.loss.width

    def parameter_groups(self, lr: float) -> list[dict[str, Any]]:
        return [{"params": self.loss.parameters(), "lr": self.propensity_lr, "weight_decay": 0.0}]

    def callbacks(self) -> list[Any]:
        return [_state_callback(self)]

    def propensities(self) -> list[float]:
        """Current estimate: the examination propensity of ranks 1.. relative to rank 1."""
        return [round(float(p), 6) for p in self.loss.propensities()] if self.loss is not None else []

    def state_dict(self) -> dict[str, Any]:
        return {"logits": [float(x) for x in self.loss.logits.detach().tolist()]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        import torch

        logits = state.get("logits")
        if not isinstance(logits, list) or len(logits) != self.loss.width:
            raise RankkitError(f"checkpointed DLA state has {len(logits or [])} ranks, expected {self.loss.width}")
        with torch.no_grad():
            self.loss.logits.copy_(torch.tensor(logits, dtype=self.loss.logits.dtype, device=self.loss.logits.device))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "propensities": self.propensities()}


def _state_callback(objective: DLAObjective) -> Any:
    """A TrainerCallback: zero the propensity gradients after each optimiser step (the Trainer
    zeroes only the model's), save the logits into every checkpoint and restore them on resume."""
    from transformers import TrainerCallback

    class ClickObjectiveState(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step > 0:
                f = Path(args.output_dir) / f"checkpoint-{state.global_step}" / STATE_FILE
                if f.exists():
                    objective.load_state_dict(json.loads(f.read_text()))

        def on_optimizer_step(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            for p in objective.loss.parameters():
                p.grad = None

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                (folder / STATE_FILE).write_text(json.dumps(objective.state_dict()))

    return ClickObjectiveState()


#: objective name -> class (registered on import; ``objectives.py`` imports this module)
CLICK_OBJECTIVES: dict[str, type[Objective]] = {
    "naive": NaiveClickObjective,
    "ips": IPSClickObjective,
    "dla": DLAObjective,
}


for _name, _cls in CLICK_OBJECTIVES.items():
    register_objective(_name, _cls)
