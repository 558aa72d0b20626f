"""Training objectives: how a batch is built and what the loss is, as objects.

The trainer (``trainer.py``) knows nothing about rerankers: it asks the
objective to load the model, to collate examples into a batch and to compute
the loss, and adds the adapter method's regulariser. A new objective (a
joint language-modelling + ranking loss on LLM logits, click-weighted
losses, a reinforcement-learning reward) is a subclass plus one call, from
anywhere (no edit under ``rankkit/``)::

    from rankkit.training.objectives import Objective, register_objective

    class MyObjective(Objective):
        def collate(self, examples): ...          # -> dict of tensors
        def compute_loss(self, model, batch): ... # -> (loss, outputs)

    register_objective("mine", MyObjective)       # config: objective: {name: mine, options: {...}}

Options come from the config's ``objective.options`` (and, for objectives
whose constructor takes ``loss``/``loss_options``, from its ``loss:`` block);
a bad option fails in the constructor, before any model loads.
``"listwise"`` (the default) trains a sequence-classification cross-encoder
on groups with any loss of ``losses.LOSSES``.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError


class Objective:
    """Base class: the seams the trainer calls, with sequence-classification defaults.

    Override :meth:`collate` and :meth:`compute_loss`; override
    :meth:`load_model` / :meth:`save` and ``task_type`` for other model heads
    (e.g. ``AutoModelForCausalLM`` and ``"CAUSAL_LM"``).
    """

    #: peft ``TaskType`` name adapters are built for
    task_type: str = "SEQ_CLS"

    def __init__(self, **options: Any):
        if options:
            raise ConfigError(f"objective {type(self).__name__} takes no options, got {sorted(options)}")
        self.options: dict[str, Any] = {}
        self.tokenizer: Any = None
        self.max_length = 256
        self.group_size: int | None = None
        self.pairs = 0          # (query, document) pairs collated
        self.truncated = 0      # of which longer than max_length

    def encode_pairs(self, items: Sequence[Any]) -> Any:
        """Tokenise every (query, document) pair of ``items`` (each with ``.query`` and ``.docs``)
        in one padded batch: documents truncated, never the query; empty documents as
        ``[empty]``; pairs and truncated pairs counted."""
        queries = [e.query for e in items for _ in e.docs]
        docs = [d if d.strip() else "[empty]" for e in items for d in e.docs]
        enc = self.tokenizer(queries, docs, truncation="only_second", max_length=self.max_length,
                             padding=True, return_tensors="pt")
        self.pairs += len(docs)
        self.truncated += int((enc["attention_mask"].sum(1) >= self.max_length).sum())
        return enc

    # before the model loads ------------------------------------------------------
    def check(self, examples: Sequence[Any]) -> None:
        """Reject unusable training data before any model loads (default: accept)."""

    def load_model(self, base_model: str) -> tuple[Any, Any, set[str]]:
        """(model, tokenizer, modules the checkpoint lacked); default: a 1-logit sequence classifier."""
        from ..folders import load_base

        return load_base(base_model)

    def setup(self, tokenizer: Any, max_length: int, group_size: int | None = None) -> None:
        """Called once the tokenizer is known, before the first batch."""
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.group_size = group_size

    def parameter_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimiser parameter groups of the objective's own trainable parameters (e.g. DLA's
        propensity model), added to the Trainer's optimiser; ``lr`` is the model's rate."""
        return []

    def callbacks(self) -> list[Any]:
        """``transformers.TrainerCallback`` s the objective needs (e.g. to checkpoint its own state)."""
        return []

    # per step -------------------------------------------------------------------------
    def collate(self, examples: Sequence[Any]) -> dict[str, Any]:
        raise NotImplementedError

    def compute_loss(self, model: Any, batch: dict[str, Any]) -> tuple[Any, Any]:
        """(scalar loss, model outputs). Do not pass ``labels`` into the model: loss terms the
        model would add itself (AdaLoRA's regulariser) are added by the trainer."""
        raise NotImplementedError

    # after training --------------------------------------------------------------------
    def save(self, model: Any, tokenizer: Any, folder: str | Path, **manifest: Any) -> Path:
        """Write the trained model folder; default: a reranker folder (``rankkit.folders``)."""
        from ..folders import save_reranker

        return save_reranker(model, tokenizer, folder, **manifest)

    def describe(self) -> dict[str, Any]:
        """What goes into the manifest's ``training.objective``."""
        name = next((k for k, v in OBJECTIVES.items() if v is type(self)), type(self).__name__)
        return {"name": name, "options": dict(self.options)}


class ListwiseObjective(Objective):
    """A cross-encoder scores every (query, document) pair of a batch of groups; a rankkit loss
    over each group's scores (``[groups, list]``, padded and masked), with per-item weights.

    Pointwise (``bce``), pairwise (``ranknet``) and listwise losses all fit:
    they take the same ``(scores, labels, mask, weights)``.
    """

    def __init__(self, loss: str = "softmax_ce", loss_options: dict[str, Any] | None = None):
        from .losses import get_loss

        super().__init__()
        self.loss_name = str(loss)
        self.loss_options = dict(loss_options or {})
        self.loss = get_loss(self.loss_name, **self.loss_options)
        self.options = {"loss": self.loss_name, "loss_options": self.loss_options}

    def check(self, examples: Sequence[Any]) -> None:
        from .data import check_labels

        check_labels(examples, self.loss_name)

    def collate(self, examples: Sequence[Any]) -> dict[str, Any]:
        """One tokenised batch of all pairs (documents truncated, never the query), plus
        ``labels``, ``group_mask`` and, when any group has them, ``weights`` of shape [B, L]."""
        import torch

        groups = [g.head(self.group_size) for g in examples]
        width = max(len(g.docs) for g in groups)
        enc = self.encode_pairs(groups)
        labels = torch.zeros(len(groups), width)
        mask = torch.zeros(len(groups), width, dtype=torch.bool)
        weights = torch.ones(len(groups), width)
        for b, g in enumerate(groups):
            labels[b, : len(g.labels)] = torch.tensor(g.labels, dtype=torch.float32)
            mask[b, : len(g.labels)] = True
            if g.weights is not None:
                weights[b, : len(g.weights)] = torch.tensor(g.weights, dtype=torch.float32)
        batch = {**enc, "labels": labels, "group_mask": mask}
        if any(g.weights is not None for g in groups):
            batch["weights"] = weights
        return batch

    def scores(self, model: Any, batch: dict[str, Any]) -> tuple[Any, Any]:
        """(scores [B, L] with zeros at padding, model outputs)."""
        return group_scores(model, batch, ("labels", "group_mask", "weights"))

    def compute_loss(self, model: Any, batch: dict[str, Any]) -> tuple[Any, Any]:
        scores, out = self.scores(model, batch)
        loss = self.loss(scores, batch["labels"], batch["group_mask"], weights=batch.get("weights"))
        return loss, out


def group_scores(model: Any, batch: dict[str, Any], extra_keys: Sequence[str]) -> tuple[Any, Any]:
    """One forward pass over a batch's flattened pairs, scores put back as ``[B, L]`` lists.

    ``batch["group_mask"]`` marks the real items (row-major order = pair order);
    ``extra_keys`` are the batch entries that are not model inputs. Padding scores 0.
    """
    from ..rerankers.heads import relevance_logit

    out = model(**{k: v for k, v in batch.items() if k not in extra_keys})
    mask = batch["group_mask"]
    flat = relevance_logit(out.logits).float()
    return flat.new_zeros(mask.shape).masked_scatter(mask, flat), out


#: objective name -> class (one entry per objective); ``"listwise"`` is the default
OBJECTIVES: dict[str, type[Objective]] = {
    "listwise": ListwiseObjective,
}
DEFAULT_OBJECTIVE = "listwise"


def register_objective(name: str, cls: type[Objective]) -> type[Objective]:
    """Make ``cls`` available as ``objective: {name: name}`` (replaces an entry of that name)."""
    if not (isinstance(cls, type) and issubclass(cls, Objective)):
        raise ConfigError(f"register_objective({name!r}, ...) takes an Objective subclass, not {cls!r}")
    OBJECTIVES[str(name)] = cls
    return cls


def takes_loss(name: str) -> bool:
    """Whether objective ``name`` is configured by a ``loss:`` block (its constructor takes ``loss``)."""
    cls = OBJECTIVES.get(name)
    return cls is not None and "loss" in inspect.signature(cls.__init__).parameters


def make_objective(name: str | None = None, options: dict[str, Any] | None = None,
                   loss: str | None = None, loss_options: dict[str, Any] | None = None) -> Objective:
    """Build the registered objective ``name``; unknown names and bad options are ``ConfigError``s.

    ``loss``/``loss_options`` are passed on to objectives that take them.
    """
    name = name or DEFAULT_OBJECTIVE
    cls = OBJECTIVES.get(name)
    if cls is None:
        raise ConfigError(f"unknown objective {name!r} (choose {', '.join(OBJECTIVES)})")
    kwargs = dict(options or {})
    if loss is not None:
        if not takes_loss(name):
            raise ConfigError(f"objective {name!r} takes no loss (drop the loss block or use 'listwise')")
        kwargs.setdefault("loss", loss)
        kwargs.setdefault("loss_options", loss_options or {})
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"bad option for objective {name!r}: {e}") from e

