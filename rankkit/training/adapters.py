"""Adapter methods: one registry entry per method, carrying its peft config, task type and hooks.

Adding a method is one call, from anywhere (no edit under ``rankkit/``)::

    from rankkit.training.adapters import AdapterMethod, register_adapter
    register_adapter("lora_q", AdapterMethod("LoraConfig", {"r": 8, "target_modules": ["query"]}))

An :class:`AdapterMethod` names a peft config class and its defaults; its
hooks cover what a method needs beyond the config, so the trainer stays
generic:

- ``prepare(options, total_steps) -> options``: fill in options that depend
  on the run (AdaLoRA's ``total_step`` and schedule);
- ``callbacks(model) -> [TrainerCallback]``: work between optimizer steps
  (AdaLoRA's rank reallocation);
- ``regularizer(model) -> tensor | None``: a term the trainer adds to every
  training loss (AdaLoRA's orthogonal regulariser).

``config=None`` means no adapter: every weight is trained (``"full"``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

FULL = "full"


def _same_options(options: dict[str, Any], total_steps: int | None) -> dict[str, Any]:
    return options


def _no_callbacks(model: Any) -> list[Any]:
    return []


def _no_regularizer(model: Any) -> Any:
    return None


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


#: method name -> adapter method (one entry per method; options override defaults)
ADAPTERS: dict[str, AdapterMethod] = {
    "lora": AdapterMethod("LoraConfig", {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05}, "low-rank update"),
    "dora": AdapterMethod("LoraConfig", {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "use_dora": True},
                          "weight-decomposed LoRA"),
    "adalora": AdapterMethod("AdaLoraConfig", {"init_r": 12, "target_r": 8, "lora_alpha": 32},
                             "LoRA with an adaptive rank budget", prepare=_adalora_prepare,
                             callbacks=_adalora_callbacks, regularizer=_adalora_regularizer),
    "vera": AdapterMethod("VeraConfig", {"r": 256}, "shared random projections, trained scaling vectors"),
    "randlora": AdapterMethod("RandLoraConfig", {"r": 32}, "full-rank update from random bases"),
    "ia3": AdapterMethod("IA3Config", {}, "learned rescaling of activations"),
    FULL: AdapterMethod(None, {}, "every weight trained (no adapter)"),
}


def register_adapter(name: str, method: AdapterMethod) -> AdapterMethod:
    """Make ``method`` available as ``adapter: {method: name}`` (replaces an entry of that name)."""
    if not isinstance(method, AdapterMethod):
        raise ConfigError(f"register_adapter({name!r}, ...) takes an AdapterMethod, "
                          f"not {type(method).__name__}")
    ADAPTERS[str(name)] = method
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
