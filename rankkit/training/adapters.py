"""Adapter methods: one registry entry per method, carrying its peft config, task type and hooks.

Adding a method is one call, from anywhere (no edit under ``rankkit/``)::

    from rankkit.training.adapters import AdapterMethod, register_adapter
    register_adapter("lora_q", AdapterMethod("LoraConfig", {"r": 8, "target_modules": ["query"]}))

An :class:`AdapterMethod` names a peft config class and its defaults; its
hooks cover what a method needs beyond the config, so the trainer stays
generic:

- ``prepare(options, total_steps) -> options``: fill in options that depend
  on the run (AdaLoRA's ``total_step`` and schedule);
- ``initialize(model, config, data, extra) -> peft model``: wrap the model,
  for data-dependent initialisations (LoRA-GA, EVA, LoRA-SB) from a few
  training batches (:class:`InitData`, which ``trainer.train`` supplies);
  ``needs_data(options)`` says whether it needs them;
- ``callbacks(model) -> [TrainerCallback]``: work between optimizer steps
  (AdaLoRA's rank reallocation);
- ``regularizer(model) -> tensor | None``: a term the trainer adds to every
  training loss (AdaLoRA's orthogonal regulariser).

Options are checked before anything is built: the accepted ones are the peft
config dataclass's fields (less those the method fixes) plus the method's own
``extra_options``; the rank (``rank_option``) must fit every targeted layer.
``config=None`` means no adapter: every weight is trained (``"full"``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..folders import ADAPTER_METHODS
from .adapter_layers import MODEL_INPUTS, target_linears  # noqa: F401  (MODEL_INPUTS re-exported)

FULL = "full"

#: peft config fields that are peft's own bookkeeping, never user options
_INTERNAL_FIELDS = frozenset({"peft_type", "task_type", "base_model_name_or_path", "revision",
                              "inference_mode", "auto_mapping", "peft_version"})


def _same_options(options: dict[str, Any], total_steps: int | None) -> dict[str, Any]:
    return options


def _no_callbacks(model: Any) -> list[Any]:
    return []


def _no_regularizer(model: Any) -> Any:
    return None


def _no_data(options: dict[str, Any]) -> bool:
    return False


def _wrap(model: Any, config: Any, data: InitData | None, extra: dict[str, Any]) -> Any:
    """Default ``initialize``: peft's own (data-free) initialisation."""
    import peft

    return peft.get_peft_model(model, config)


@dataclass
class InitData:
    """A few training batches and the training loss, for data-dependent initialisations.

    ``batches(n)`` collates up to ``n`` batches of the run's training data
    (the objective's ``collate``); ``loss(model, batch)`` is the objective's
    scalar loss; ``lr`` / ``warmup_steps`` are the run's, so an estimate of
    the first optimizer update (LoRA-SB) uses the step the trainer will take.
    """

    batches: Callable[[int], list[dict[str, Any]]]
    loss: Callable[[Any, dict[str, Any]], Any]
    lr: float = 2e-4
    warmup_steps: int = 0

    def first_step_lr(self) -> float:
        """The learning rate of the first optimizer steps under linear warmup (LoRA-SB's scale)."""
        return float(self.lr) / max(1, int(self.warmup_steps))


def init_data(objective: Any, examples: Sequence[Any], batch_size: int, lr: float,
              warmup_steps: int = 0) -> InitData:
    """:class:`InitData` over the first training examples, collated by ``objective``.

    The objective's pair counters are restored afterwards, so the run's
    truncation statistics count the training batches only.
    """
    def batches(n: int) -> list[dict[str, Any]]:
        pairs, truncated = getattr(objective, "pairs", 0), getattr(objective, "truncated", 0)
        size = max(1, int(batch_size))
        out = [objective.collate(list(examples[i:i + size]))
               for i in range(0, min(len(examples), n * size), size)]
        objective.pairs, objective.truncated = pairs, truncated
        return out

    return InitData(batches, lambda model, batch: objective.compute_loss(model, batch)[0], lr, warmup_steps)


@dataclass(frozen=True)
class AdapterMethod:
    """A peft config class (by name), the defaults rankkit uses, the task type and the hooks."""

    config: str | None
    defaults: dict[str, Any] = field(default_factory=dict)
    doc: str = ""
    #: peft ``TaskType`` name the method is limited to; None: whatever the objective trains
    task_type: str | None = None
    prepare: Callable[[dict[str, Any], int | None], dict[str, Any]] = _same_options
    callbacks: Callable[[Any], list[Any]] = _no_callbacks
    regularizer: Callable[[Any], Any] = _no_regularizer
    #: (model, peft config, InitData | None, extra options) -> peft model
    initialize: Callable[[Any, Any, Any, dict[str, Any]], Any] = _wrap
    #: whether ``initialize`` needs training data with these (resolved) options
    needs_data: Callable[[dict[str, Any]], bool] = _no_data
    #: options rankkit's hooks consume (not peft config fields), e.g. ``init_batches``
    extra_options: tuple[str, ...] = ()
    #: config fields the method sets itself (not user options)
    fixed: tuple[str, ...] = ()
    #: the option that is a rank, checked against every targeted layer (None: no check)
    rank_option: str | None = None

    def accepted_options(self) -> list[str]:
        """Option names this method accepts: its peft config's fields (less fixed ones) and extras."""
        if self.config is None:
            return []
        import peft

        cls = getattr(peft, self.config)
        names = {f.name for f in dataclasses.fields(cls) if f.init and not f.name.startswith("_")}
        return sorted((names - _INTERNAL_FIELDS - set(self.fixed)) | set(self.extra_options))


def check_options(name: str, spec: AdapterMethod, options: dict[str, Any]) -> None:
    """Refuse options the method does not accept, naming them and the accepted ones."""
    if spec.config is None:
        if options:
            raise ConfigError(f"{name!r} takes no adapter options, got {sorted(options)}")
        return
    accepted = spec.accepted_options()
    bad = sorted(set(options) - set(accepted))
    if bad:
        raise ConfigError(f"bad option for adapter {name!r}: it does not accept {bad} "
                          f"(accepted: {', '.join(accepted)})")


def check_rank(name: str, model: Any, config: Any, rank: Any) -> None:
    """A rank larger than a targeted layer's smaller side is an error (it cannot be reached)."""
    if rank is None:
        return
    layers = target_linears(model, config)
    for key, mod in layers.items():
        limit = min(mod.in_features, mod.out_features)
        if int(rank) > limit:
            raise ConfigError(f"adapter {name!r}: rank {rank} is larger than layer {key!r} allows "
                              f"({mod.out_features} x {mod.in_features}: at most {limit})")


# -------------------------------------------------------------------------- AdaLoRA
def _adalora_prepare(options: dict[str, Any], total_steps: int | None) -> dict[str, Any]:
    """AdaLoRA's budget schedule needs the run length: ``total_step``, and tinit/tfinal from it."""
    if "total_step" in options:
        return options
    if not total_steps:
        raise ConfigError("adalora needs total_step (the number of training steps)")
    steps = int(total_steps)
    return {"total_step": steps, "tinit": max(1, steps // 10), "tfinal": max(1, steps // 5), **options}


def _adalora_callbacks(model: Any) -> list[Any]:
    from transformers import TrainerCallback

    class AdaLoraAllocate(TrainerCallback):
        """AdaLoRA prunes/reallocates ranks after each optimizer step (it reads the gradients)."""

        def on_optimizer_step(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            model.base_model.update_and_allocate(state.global_step)

    return [AdaLoraAllocate()]


def _adalora_regularizer(model: Any) -> Any:
    """``orth_reg_weight`` times the mean ``||P P^T - I||_F`` over the lora_A / lora_B matrices.

    This mirrors peft's ``AdaLoraModel.forward`` (peft 0.21), which adds the
    same term only when the model computed its own ``outputs.loss``; rankkit's
    objectives compute the loss outside the model, so peft never adds it.
    Objectives must therefore not pass ``labels`` into an AdaLoRA model.
    """
    import torch
    from peft.utils.integrations import gather_params_ctx

    ada = model.base_model
    name = ada.trainable_adapter_name
    weight = ada.peft_config[name].orth_reg_weight
    if weight < 0:
        raise ConfigError("adalora: orth_reg_weight must be >= 0")
    total, count = None, 0
    for n, p in ada.model.named_parameters():
        if ("lora_A" in n or "lora_B" in n) and name in n:
            if p.shape == torch.Size([0]):
                with gather_params_ctx(p, fwd_module=ada):
                    cov = p @ p.T if "lora_A" in n else p.T @ p
            else:
                cov = p @ p.T if "lora_A" in n else p.T @ p
            eye = torch.eye(*cov.size(), out=torch.empty_like(cov))
            term = torch.norm(cov - eye, p="fro")
            total = term if total is None else total + term
            count += 1
    if total is None:
        return None
    return weight * (total / count)


def _lora(defaults: dict[str, Any], doc: str) -> AdapterMethod:
    """A ``LoraConfig`` method: any ``init_lora_weights`` rankkit supports (PiSSA, OLoRA, LoRA-GA, EVA)."""
    from . import adapter_inits as inits

    return AdapterMethod("LoraConfig", {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, **defaults}, doc,
                         prepare=inits.lora_prepare, initialize=inits.lora_initialize,
                         needs_data=inits.lora_needs_data, extra_options=("init_batches",), rank_option="r")


def _latent(initialize: Callable[..., Any], doc: str, extra: tuple[str, ...] = ()) -> AdapterMethod:
    """A LoRA-XS-architecture method (frozen B, A; trainable r x r R) on peft's TinyLoRA layer."""
    from . import lora_sb

    return AdapterMethod("TinyLoraConfig", {"r": 16}, doc, prepare=lora_sb.prepare, initialize=initialize,
                         needs_data=lora_sb.needs_data if initialize is lora_sb.lora_sb_initialize else _no_data,
                         extra_options=extra, fixed=lora_sb.FIXED, rank_option="r")


def _builtin() -> dict[str, AdapterMethod]:
    from . import lora_sb, osf

    return {
        "lora": _lora({}, "low-rank update B A, B = 0 at start"),
        "dora": _lora({"use_dora": True}, "weight-decomposed LoRA (magnitude + direction)"),
        "pissa": _lora({"init_lora_weights": "pissa", "lora_dropout": 0.0},
                       "LoRA started from the top-r singular part of each weight (PiSSA)"),
        "olora": _lora({"init_lora_weights": "olora", "lora_dropout": 0.0},
                       "LoRA started from a QR decomposition of each weight (OLoRA)"),
        "lora_ga": _lora({"init_lora_weights": "lora_ga", "lora_dropout": 0.0},
                         "LoRA started to align with the full gradient on training batches (LoRA-GA)"),
        "eva": _lora({"init_lora_weights": "eva", "lora_dropout": 0.0},
                     "LoRA with A from the SVD of layer activations on training batches (EVA)"),
        "adalora": AdapterMethod("AdaLoraConfig", {"init_r": 12, "target_r": 8, "lora_alpha": 32},
                                 "LoRA with an adaptive rank budget", prepare=_adalora_prepare,
                                 callbacks=_adalora_callbacks, regularizer=_adalora_regularizer,
                                 rank_option="init_r"),
        "vera": AdapterMethod("VeraConfig", {"r": 256}, "shared random projections, trained scaling vectors"),
        "randlora": AdapterMethod("RandLoraConfig", {"r": 32}, "full-rank update from random bases",
                                  rank_option="r"),
        "tinylora": AdapterMethod("TinyLoraConfig", {"r": 2, "u": 64},
                                  "frozen SVD factors of W, R = sum of u trained scalars times random r x r "
                                  "matrices (TinyLoRA)", rank_option="r"),
        "lora_xs": _latent(lora_sb.lora_xs_initialize,
                           "frozen SVD factors of W, trained r x r matrix R started at 0 (LoRA-XS)"),
        "lora_sb": _latent(lora_sb.lora_sb_initialize,
                           "LoRA-XS started from the truncated SVD of the estimated first full update (LoRA-SB)",
                           extra=("init_batches", "init_lr", "estimate")),
        "ia3": AdapterMethod("IA3Config", {}, "learned rescaling of activations"),
        "osf": AdapterMethod("OSFConfig", {}, "full-rank update orthogonal to each weight's top singular "
                             "directions (OSF, continual training); saved merged", prepare=osf.prepare,
                             initialize=osf.initialize, callbacks=osf.callbacks, fixed=osf.FIXED),
        FULL: AdapterMethod(None, {}, "every weight trained (no adapter)"),
    }


#: method name -> adapter method (one entry per method; options override defaults)
ADAPTERS: dict[str, AdapterMethod] = _builtin()
ADAPTER_METHODS.update(ADAPTERS)     # folders load what the registry knows


def register_adapter(name: str, method: AdapterMethod) -> AdapterMethod:
    """Make ``method`` available as ``adapter: {method: name}`` (replaces an entry of that name)."""
    if not isinstance(method, AdapterMethod):
        raise ConfigError(f"register_adapter({name!r}, ...) takes an AdapterMethod, "
                          f"not {type(method).__name__}")
    ADAPTERS[str(name)] = method
    ADAPTER_METHODS.add(str(name))
    return method


def methods() -> list[str]:
    """Registered adapter method names."""
    return list(ADAPTERS)


def get_adapter(name: str, task_type: str | None = None) -> AdapterMethod:
    """The method called ``name``; with ``task_type`` (the objective's), it must suit that task."""
    spec = ADAPTERS.get(name)
    if spec is None:
        raise ConfigError(f"unknown adapter method {name!r} (choose {', '.join(methods())})")
    if task_type and spec.task_type and task_type != spec.task_type:
        raise ConfigError(f"adapter {name!r} is for {spec.task_type} models, but the objective trains {task_type}")
    return spec
