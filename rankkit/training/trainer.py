"""Training loop: an HF ``Trainer`` subclass driven by an objective and an adapter method.

Nothing here knows what is trained. The seams:

- the objective (``objectives.py``, registry ``OBJECTIVES``) loads the model,
  collates a batch, computes the loss and saves the result; the default
  ``"listwise"`` trains a cross-encoder on groups with a ``losses.py`` loss;
- the adapter method (``adapters.py``, registry ``ADAPTERS``) wraps the
  model and brings its callbacks (AdaLoRA's rank reallocation) and a
  regulariser added to every loss (AdaLoRA's orthogonal term);
- the data (``sources.py``, registry ``DATA_SOURCES``) is a list of examples
  the objective's ``collate`` understands (``data.Group`` for listwise).

Checkpoints, resume, the scheduler and seeding are the ``Trainer``'s own, and so
is data parallelism: under ``accelerate launch`` (or ``torchrun``) with N
processes each step takes N x ``batch_size`` examples (each process
``batch_size`` of them, consecutive slices of the one seeded order the
single-process run reads), the gradients are averaged, and only the main
process writes the model folder (``distributed.on_main``). So N processes with
``batch_size: b`` train the same model as one process with ``batch_size: N*b``
(or ``batch_size: b`` and ``gradient_accumulation: N``), up to float rounding
and dropout masks.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .distributed import on_main, world_size
from .objectives import Objective

log = logging.getLogger(__name__)


@dataclass
class TrainOptions:
    """Optimisation settings (the ``train:`` block of a config)."""

    steps: int = 100
    batch_size: int = 4            # examples (groups) per step
    group_size: int = 8            # items per group kept (1 positive + group_size-1 negatives)
    lr: float = 2e-4
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 42
    bf16: bool = False
    save_steps: int = 0            # 0 = only the final model
    save_total_limit: int = 2
    logging_steps: int = 10
    resume: bool = True
    threads: int | None = None
    gradient_accumulation: int = 1


def _trainer_class() -> type:
    from transformers import Trainer

    class ObjectiveTrainer(Trainer):
        """HF Trainer whose loss is ``objective.compute_loss`` plus the adapter's regulariser."""

        def __init__(self, *args: Any, objective: Objective, regularizer: Any = None, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.objective = objective
            self.regularizer = regularizer
            # the objective's loss is a mean over its batch and ignores ``num_items_in_batch``: the
            # Trainer must divide it by the accumulation steps, so that ``gradient_accumulation: k``
            # (and k processes) give the gradient of one batch k times larger
            self.model_accepts_loss_kwargs = False

        def create_optimizer(self, model: Any = None) -> Any:
            """The Trainer's optimiser plus the objective's own parameter groups (DLA's propensities)."""
            opt = super().create_optimizer(model)
            have = {id(p) for g in opt.param_groups for p in g["params"]}
            for group in self.objective.parameter_groups(self.args.learning_rate):
                if not any(id(p) in have for p in group["params"]):
                    opt.add_param_group(group)
            return opt

        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            loss, out = self.objective.compute_loss(model, inputs)
            if self.regularizer is not None:
                extra = self.regularizer(getattr(model, "module", model))
                if extra is not None:
                    loss = loss + extra
            return (loss, out) if return_outputs else loss

    return ObjectiveTrainer


@dataclass
class TrainResult:
    folder: Path
    trainable: int
    total: int
    steps: int
    seconds: float
    seconds_per_step: float
    peak_rss_mb: float
    final_loss: float | None
    truncated_pairs: int
    pairs: int
    log_history: list[dict[str, Any]] = field(default_factory=list)


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def train(groups: Sequence[Any], base_model: str, output_dir: str | os.PathLike,
          method: str = "lora", adapter_options: dict[str, Any] | None = None,
          loss: str = "softmax_ce", loss_options: dict[str, Any] | None = None,
          max_length: int = 256, options: TrainOptions | None = None,
          checkpoint_dir: str | os.PathLike | None = None, extra_manifest: dict[str, Any] | None = None,
          objective: str | Objective | None = None, objective_options: dict[str, Any] | None = None,
          ) -> TrainResult:
    """Fine-tune ``base_model`` on ``groups`` (training examples) and save the model at ``output_dir``.

    ``objective`` is a registered name (default ``"listwise"``, which uses
    ``loss``/``loss_options``) or an :class:`Objective`. Checkpoints go to
    ``checkpoint_dir`` (default ``<output_dir>.checkpoints``); with
    ``options.resume`` an interrupted run continues from the latest one.
    """
    import torch
    from transformers import TrainingArguments, set_seed

    from .adapters import get_adapter, init_data
    from .objectives import make_objective, takes_loss
    from .peft import add_adapter, count_parameters

    opts = options or TrainOptions()
    if not isinstance(objective, Objective):
        name = objective
        uses_loss = takes_loss(name or "listwise")
        objective = make_objective(name, objective_options, loss=loss if uses_loss else None,
                                   loss_options=loss_options if uses_loss else None)
    adapter = get_adapter(method, objective.task_type)
    if not groups:
        raise ConfigError("no training groups: check the data sources")
    objective.check(groups)
    if opts.threads:
        torch.set_num_threads(int(opts.threads))
    set_seed(opts.seed)
    model, tok, new_modules = objective.load_model(base_model)
    objective.setup(tok, max_length, opts.group_size)
    warmup = int(opts.warmup_ratio * opts.steps)
    t_init = time.perf_counter()    # data-dependent inits (LoRA-GA, EVA, LoRA-SB) read the first batches
    model = add_adapter(model, method, adapter_options, new_modules, total_steps=opts.steps,
                        task_type=objective.task_type,
                        data=init_data(objective, groups, opts.batch_size, opts.lr, warmup))
    init_seconds = time.perf_counter() - t_init
    trainable, total = count_parameters(model)
    ckpt = Path(checkpoint_dir) if checkpoint_dir else Path(f"{output_dir}.checkpoints")
    args = TrainingArguments(
        output_dir=str(ckpt), max_steps=opts.steps, per_device_train_batch_size=opts.batch_size,
        gradient_accumulation_steps=opts.gradient_accumulation, learning_rate=opts.lr,
        warmup_steps=warmup, weight_decay=opts.weight_decay,
        max_grad_norm=opts.max_grad_norm, lr_scheduler_type="linear", seed=opts.seed, data_seed=opts.seed,
        bf16=opts.bf16, use_cpu=not torch.cuda.is_available(), logging_steps=opts.logging_steps,
        save_strategy="steps" if opts.save_steps else "no", save_steps=opts.save_steps or 500,
        save_total_limit=opts.save_total_limit, report_to=[], remove_unused_columns=False,
        label_names=["labels"], dataloader_num_workers=0, disable_tqdm=False,
    )
    trainer = _trainer_class()(model=model, args=args, train_dataset=list(groups),
                               data_collator=objective.collate, objective=objective,
                               regularizer=adapter.regularizer,
                               callbacks=adapter.callbacks(model) + objective.callbacks())
    resume = None
    if opts.resume and ckpt.exists() and any(ckpt.glob("checkpoint-*")):
        resume = True
        log.warning("resuming from the latest checkpoint in %s", ckpt)
    t0 = time.perf_counter()
    out = trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - t0
    if objective.truncated:
        log.warning("%d of %d training pairs were longer than max_length=%d (documents truncated)",
                    objective.truncated, objective.pairs, max_length)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    steps_run = max(1, int(out.global_step))
    described = objective.describe()
    info = {"objective": described, "steps": int(out.global_step),
            "seconds": round(seconds, 1), "adapter_init_seconds": round(init_seconds, 1),
            "trainable_parameters": trainable, "total_parameters": total, "processes": world_size(),
            "train": {k: v for k, v in vars(opts).items()}, **(extra_manifest or {})}
    if "loss" in described["options"]:
        info = {"loss": described["options"]["loss"],
                "loss_options": described["options"].get("loss_options") or {}, **info}
    model.eval()
    folder = on_main(objective.save, model, tok, output_dir, default=Path(output_dir), base_model=base_model,
                     method=method, options=adapter_options, max_length=max_length, extra={"training": info})
    return TrainResult(folder, trainable, total, int(out.global_step), seconds, seconds / steps_run,
                       _peak_rss_mb(), losses[-1] if losses else None, objective.truncated,
                       objective.pairs, list(trainer.state.log_history))
