"""Training a cross-encoder reranker: an HF ``Trainer`` subclass with listwise groups.

Each batch holds ``batch_size`` groups (one query, 1 positive + N negatives).
The collator tokenises every (query, document) pair of the batch in one call
(document truncated, never the query), the model scores them in one forward
pass, and the scores are regrouped to ``[groups, list]`` for a rankkit loss
(``losses.py``). Checkpoints, resume, the scheduler and seeding are the
``Trainer``'s own; AdaLoRA's rank reallocation runs as a callback.
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
from ..rerankers.heads import relevance_logit
from .data import Group

log = logging.getLogger(__name__)


@dataclass
class TrainOptions:
    """Optimisation settings (the ``train:`` block of a config)."""

    steps: int = 100
    batch_size: int = 4            # groups (queries) per step
    group_size: int = 8            # 1 positive + group_size-1 negatives
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


class GroupCollator:
    """Turns groups into one tokenised batch plus ``labels``/``group_mask`` of shape [B, L]."""

    def __init__(self, tokenizer: Any, max_length: int, group_size: int | None = None):
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.group_size = group_size
        self.truncated = 0
        self.pairs = 0

    def __call__(self, groups: Sequence[Group]) -> dict[str, Any]:
        import torch

        if self.group_size:
            groups = [Group(g.query, g.docs[: self.group_size], g.labels[: self.group_size], g.qid)
                      for g in groups]
        width = max(len(g.docs) for g in groups)
        queries = [g.query for g in groups for _ in g.docs]
        docs = [d if d.strip() else "[empty]" for g in groups for d in g.docs]
        enc = self.tokenizer(queries, docs, truncation="only_second", max_length=self.max_length,
                             padding=True, return_tensors="pt")
        self.pairs += len(docs)
        self.truncated += int((enc["attention_mask"].sum(1) >= self.max_length).sum())
        labels = torch.zeros(len(groups), width)
        mask = torch.zeros(len(groups), width, dtype=torch.bool)
        for b, g in enumerate(groups):
            labels[b, : len(g.labels)] = torch.tensor(g.labels, dtype=torch.float32)
            mask[b, : len(g.labels)] = True
        return {**enc, "labels": labels, "group_mask": mask}


def _trainer_class() -> type:
    from transformers import Trainer

    class RerankerTrainer(Trainer):
        """HF Trainer whose loss is a rankkit learning-to-rank loss over groups."""

        def __init__(self, *args: Any, rank_loss: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.rank_loss = rank_loss

        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            labels = inputs.pop("labels")
            mask = inputs.pop("group_mask")
            out = model(**inputs)
            flat = relevance_logit(out.logits).float()
            scores = flat.new_zeros(mask.shape).masked_scatter(mask, flat)
            loss = self.rank_loss(scores, labels, mask)
            return (loss, out) if return_outputs else loss

    return RerankerTrainer


def _adalora_callback(model: Any) -> Any:
    from transformers import TrainerCallback

    class AdaLoraAllocate(TrainerCallback):
        """AdaLoRA prunes/reallocates ranks after each optimizer step (needs the gradients)."""

        def on_optimizer_step(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            model.base_model.update_and_allocate(state.global_step)

    return AdaLoraAllocate()


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


def train(groups: Sequence[Group], base_model: str, output_dir: str | os.PathLike,
          method: str = "lora", adapter_options: dict[str, Any] | None = None,
          loss: str = "softmax_ce", loss_options: dict[str, Any] | None = None,
          max_length: int = 256, options: TrainOptions | None = None,
          checkpoint_dir: str | os.PathLike | None = None, extra_manifest: dict[str, Any] | None = None,
          ) -> TrainResult:
    """Fine-tune ``base_model`` on ``groups`` and save a reranker folder at ``output_dir``.

    Checkpoints go to ``checkpoint_dir`` (default ``<output_dir>.checkpoints``);
    with ``options.resume`` an interrupted run continues from the latest one.
    """
    import torch
    from transformers import TrainingArguments, set_seed

    from .data import check_labels
    from .losses import get_loss
    from .peft import add_adapter, count_parameters, load_base, save_reranker

    opts = options or TrainOptions()
    rank_loss = get_loss(loss, **(loss_options or {}))
    if not groups:
        raise ConfigError("no training groups: check the data sources")
    check_labels(groups, loss)
    if opts.threads:
        torch.set_num_threads(int(opts.threads))
    set_seed(opts.seed)
    model, tok, new_modules = load_base(base_model)
    model = add_adapter(model, method, adapter_options, new_modules, total_steps=opts.steps)
    trainable, total = count_parameters(model)
    ckpt = Path(checkpoint_dir) if checkpoint_dir else Path(f"{output_dir}.checkpoints")
    args = TrainingArguments(
        output_dir=str(ckpt), max_steps=opts.steps, per_device_train_batch_size=opts.batch_size,
        gradient_accumulation_steps=opts.gradient_accumulation, learning_rate=opts.lr,
        warmup_steps=int(opts.warmup_ratio * opts.steps), weight_decay=opts.weight_decay,
        max_grad_norm=opts.max_grad_norm, lr_scheduler_type="linear", seed=opts.seed, data_seed=opts.seed,
        bf16=opts.bf16, use_cpu=not torch.cuda.is_available(), logging_steps=opts.logging_steps,
        save_strategy="steps" if opts.save_steps else "no", save_steps=opts.save_steps or 500,
        save_total_limit=opts.save_total_limit, report_to=[], remove_unused_columns=False,
        label_names=["labels"], dataloader_num_workers=0, disable_tqdm=False,
    )
    collator = GroupCollator(tok, max_length, opts.group_size)
    callbacks = [_adalora_callback(model)] if method == "adalora" else []
    trainer = _trainer_class()(model=model, args=args, train_dataset=list(groups),
                               data_collator=collator, rank_loss=rank_loss, callbacks=callbacks)
    resume = None
    if opts.resume and ckpt.exists() and any(ckpt.glob("checkpoint-*")):
        resume = True
        log.warning("resuming from the latest checkpoint in %s", ckpt)
    t0 = time.perf_counter()
    out = trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - t0
    if collator.truncated:
        log.warning("%d of %d training pairs were longer than max_length=%d (documents truncated)",
                    collator.truncated, collator.pairs, max_length)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    steps_run = max(1, int(out.global_step))
    info = {"loss": loss, "loss_options": loss_options or {}, "steps": int(out.global_step),
            "seconds": round(seconds, 1), "trainable_parameters": trainable, "total_parameters": total,
            "train": {k: v for k, v in vars(opts).items()}, **(extra_manifest or {})}
    model.eval()
    folder = save_reranker(model, tok, output_dir, base_model=base_model, method=method,
                           options=adapter_options, max_length=max_length, extra={"training": info})
    return TrainResult(folder, trainable, total, int(out.global_step), seconds, seconds / steps_run,
                       _peak_rss_mb(), losses[-1] if losses else None, collator.truncated,
                       collator.pairs, list(trainer.state.log_history))
