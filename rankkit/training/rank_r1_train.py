"""Rank-R1 training: a supervised warm-up (trl SFTTrainer) then GRPO (trl GRPOTrainer), both LoRA via peft.

A 135M model does not write ``</think> <answer>[k]</answer>`` unprompted, so
every GRPO reward would be 0 and the policy gradient zero. The warm-up teaches
the format on completions built from qrels (a short reasoning template + the
correct label, :func:`~rankkit.training.rank_r1_data.warmup_reasoning`); GRPO
then continues the same LoRA adapter with the format and relevance rewards.
Prompts are prefilled with ``<think>`` exactly as :class:`RankR1Reranker` does.

trl 1.x changed defaults since the Rank-R1 scripts (beta 0.0, loss "dapo",
no ``max_prompt_length``): every GRPO option used is set explicitly here
(:data:`GRPO_DEFAULTS`) and written to the adapter's ``rankkit.json``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .distributed import on_main
from .rank_r1_data import RankR1Example, warmup_reasoning

#: every GRPOConfig option this module relies on (overridable, all recorded)
GRPO_DEFAULTS: dict[str, Any] = {
    "learning_rate": 1e-4, "beta": 0.0, "loss_type": "dapo", "num_generations": 4,
    "max_completion_length": 28, "temperature": 1.0, "top_p": 1.0, "top_k": 0,
    "scale_rewards": "group", "num_iterations": 1, "epsilon": 0.2, "epsilon_high": 0.2,
    "mask_truncated_completions": False, "reward_weights": [0.5, 1.0], "prompts_per_step": 1,
    "gradient_accumulation_steps": 1, "steps_per_generation": 1, "disable_dropout": True,
    "shuffle_dataset": True, "lr_scheduler_type": "constant", "warmup_steps": 0,
    "max_grad_norm": 1.0, "weight_decay": 0.0,
}
SFT_DEFAULTS: dict[str, Any] = {"learning_rate": 5e-4, "batch_size": 2, "max_length": 1024,
                                "lr_scheduler_type": "constant", "warmup_steps": 0, "weight_decay": 0.0}
LORA_DEFAULTS: dict[str, Any] = {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0,
                                 "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}


def _run_trainer(trainer: Any) -> tuple[float, list[dict[str, Any]]]:
    """Train; return (seconds, trl's per-step log) and remove the trainer's scratch folder (nothing is saved there)."""
    t0 = time.perf_counter()
    trainer.train()
    secs = time.perf_counter() - t0
    shutil.rmtree(trainer.args.output_dir, ignore_errors=True)
    return secs, [dict(r) for r in trainer.state.log_history]


@dataclass
class PhaseResult:
    """One trained phase: its adapter folder, steps, seconds and trl's per-step log."""

    folder: Path
    steps: int
    seconds: float
    log: list[dict[str, Any]] = field(default_factory=list)


def prompt_text(tokenizer: Any, query: str, passages: Sequence[str], max_passage_tokens: int,
                style: str = "rank-r1") -> str:
    """The inference prompt (chat template + ``<think>``), passages cut to ``max_passage_tokens`` tokens."""
    from ..llm.loading import chat_prompt
    from ..rerankers.rank_r1_prompt import render

    cut = []
    for p in passages:
        ids = tokenizer(p, add_special_tokens=False)["input_ids"]
        cut.append(" ".join((tokenizer.decode(ids[:max_passage_tokens]) if len(ids) > max_passage_tokens
                             else p).split()))
    return render(lambda m: chat_prompt(tokenizer, m), query, cut, prefill=True, style=style)


def _lora(options: dict[str, Any] | None) -> Any:
    import peft

    opts = {**LORA_DEFAULTS, **(options or {})}
    return peft.LoraConfig(task_type="CAUSAL_LM", bias="none", **opts), opts


def _load(base_model: str, init_adapter: str | os.PathLike | None, lora: dict[str, Any] | None
          ) -> tuple[Any, Any, dict[str, Any]]:
    """A private (uncached) base model with a trainable LoRA: a new one, or ``init_adapter`` continued."""
    import peft

    from .causal_lm import private_causal_lm

    model, tok = private_causal_lm(base_model)
    cfg, opts = _lora(lora)
    if init_adapter is not None:
        model = peft.PeftModel.from_pretrained(model, os.fspath(init_adapter), is_trainable=True)
    else:
        model = peft.get_peft_model(model, cfg)
    model.train()
    return model, tok, opts


def save_adapter(model: Any, tokenizer: Any, folder: str | os.PathLike, manifest: dict[str, Any]) -> Path:
    """The adapter + tokenizer + ``rankkit.json`` (kind ``rank-r1-adapter``), written atomically."""
    from ..folders import model_fingerprint, write_manifest
    from ..io import atomic_dir
    from ..rerankers.rank_r1 import KIND_RANK_R1

    with atomic_dir(folder) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_manifest(tmp, {"kind": KIND_RANK_R1, "model_fingerprint": model_fingerprint(model), **manifest})
    return Path(folder)


def sft_warmup(base_model: str, examples: Sequence[RankR1Example], folder: str | os.PathLike, steps: int,
               max_passage_tokens: int = 64, options: dict[str, Any] | None = None,
               lora: dict[str, Any] | None = None, seed: int = 0, progress: bool = False,
               prompt: str = "rank-r1") -> PhaseResult:
    """Supervised warm-up with trl's SFTTrainer on prompt -> well-formed completion (loss on the completion)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from ..rerankers.rank_r1_prompt import target

    if not examples or steps < 1:
        raise ConfigError("the warm-up needs examples and steps >= 1")
    opts = {**SFT_DEFAULTS, **(options or {})}
    model, tok, lora_opts = _load(base_model, None, lora)
    rows = {"prompt": [prompt_text(tok, e.query, e.passages, max_passage_tokens, prompt) for e in examples],
            "completion": [target(e.label + 1, warmup_reasoning(e)) for e in examples]}
    out_dir = Path(os.fspath(folder))
    args = SFTConfig(output_dir=str(out_dir) + ".work", max_steps=int(steps),
                     per_device_train_batch_size=int(opts["batch_size"]), learning_rate=float(opts["learning_rate"]),
                     lr_scheduler_type=opts["lr_scheduler_type"], warmup_steps=int(opts["warmup_steps"]),
                     weight_decay=float(opts["weight_decay"]), max_length=int(opts["max_length"]),
                     completion_only_loss=True, packing=False, logging_steps=1, save_strategy="no",
                     report_to=[], seed=seed, bf16=False, fp16=False, use_cpu=not _cuda(),
                     disable_tqdm=not progress, dataloader_num_workers=0)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_dict(rows), processing_class=tok)
    secs, log = _run_trainer(trainer)
    on_main(save_adapter, trainer.model, tok, out_dir, {
        "base_model": base_model, "phase": "sft", "steps": int(steps), "seconds": round(secs, 1),
        "examples": len(examples), "lora": lora_opts, "sft": opts, "seed": seed,
        "reranker": {"name": "rank-r1", "max_passage_tokens": max_passage_tokens, "prefill": True,
                     "prompt": prompt}})
    return PhaseResult(out_dir, int(steps), secs, log)


def grpo_train(base_model: str, examples: Sequence[RankR1Example], folder: str | os.PathLike, steps: int,
               init_adapter: str | os.PathLike | None = None, max_passage_tokens: int = 64,
               options: dict[str, Any] | None = None, lora: dict[str, Any] | None = None, seed: int = 0,
               progress: bool = False, prompt: str = "rank-r1") -> PhaseResult:
    """GRPO with trl's GRPOTrainer (format + relevance rewards), continuing ``init_adapter`` if given.

    One optimisation step = ``prompts_per_step`` sets x ``num_generations``
    sampled completions; the per-step mean reward is in the returned log.
    """
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from .rank_r1_rewards import format_reward, relevance_reward

    if not examples or steps < 1:
        raise ConfigError("GRPO needs examples and steps >= 1")
    opts = {**GRPO_DEFAULTS, **(options or {})}
    unknown = set(opts) - set(GRPO_DEFAULTS)
    if unknown:
        raise ConfigError(f"unknown GRPO option(s) {sorted(unknown)} (known: {sorted(GRPO_DEFAULTS)})")
    model, tok, lora_opts = _load(base_model, init_adapter, lora)
    rows = {"prompt": [prompt_text(tok, e.query, e.passages, max_passage_tokens, prompt) for e in examples],
            "grades": [list(map(int, e.grades)) for e in examples]}
    g = int(opts["num_generations"])
    per_device = int(opts["prompts_per_step"]) * g
    out_dir = Path(os.fspath(folder))
    trl_opts = {k: v for k, v in opts.items() if k != "prompts_per_step"}
    args = GRPOConfig(output_dir=str(out_dir) + ".work", max_steps=int(steps), per_device_train_batch_size=per_device,
                      logging_steps=1, save_strategy="no", report_to=[], seed=seed, bf16=False, fp16=False,
                      use_cpu=not _cuda(), disable_tqdm=not progress, dataloader_num_workers=0,
                      log_completions=False, use_vllm=False, **trl_opts)
    trainer = GRPOTrainer(model=model, reward_funcs=[format_reward, relevance_reward], args=args,
                          train_dataset=Dataset.from_dict(rows), processing_class=tok)
    secs, log = _run_trainer(trainer)
    on_main(save_adapter, trainer.model, tok, out_dir, {
        "base_model": base_model, "phase": "grpo", "steps": int(steps), "seconds": round(secs, 1),
        "init_adapter": None if init_adapter is None else os.fspath(init_adapter), "examples": len(examples),
        "lora": lora_opts, "grpo": {**opts, "per_device_train_batch_size": per_device},
        "rewards": ["format_reward", "relevance_reward"], "seed": seed, "trl_version": _trl_version(),
        "reranker": {"name": "rank-r1", "max_passage_tokens": max_passage_tokens, "prefill": True,
                     "prompt": prompt}})
    return PhaseResult(out_dir, int(steps), secs, log)


def reward_per_step(log: Sequence[dict[str, Any]]) -> list[tuple[int, float]]:
    """(step, mean total reward) from a GRPO trainer log."""
    return [(int(r["step"]) if "step" in r else i + 1, float(r["reward"]))
            for i, r in enumerate(x for x in log if "reward" in x)]


def _cuda() -> bool:
    from .causal_lm import cuda_available

    return cuda_available()


def _trl_version() -> str:
    import trl

    return str(trl.__version__)


__all__ = ["GRPO_DEFAULTS", "SFT_DEFAULTS", "LORA_DEFAULTS", "PhaseResult", "prompt_text", "save_adapter",
           "sft_warmup", "grpo_train", "reward_per_step"]
