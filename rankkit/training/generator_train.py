"""Generator SFT: a causal LM + an adapter from the registry, trained with trl's SFTTrainer.

The loss is on the completion only (``completion_only_loss``): the model learns
to write the verdict or the cited answer, not to reproduce the passages. The
adapter method comes from :mod:`rankkit.training.adapters` (LoRA by default;
any method with a peft config and no data-dependent initialisation). The saved
folder holds the adapter, the tokenizer and a ``rankkit.json`` manifest (kind
``generator-adapter``: base model and its weights' fingerprint, method,
options, training summary) that :class:`rankkit.Generator` loads by folder.
Under ``accelerate launch`` with several processes, trl shards the batches and
only the main process writes the folder (the others wait at a barrier).
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
from .generator_data import GeneratorExample, sft_rows

#: every SFTConfig option this module relies on (overridable, all recorded in the manifest)
SFT_DEFAULTS: dict[str, Any] = {"learning_rate": 2e-4, "batch_size": 4, "gradient_accumulation_steps": 1,
                                "max_length": 1024, "lr_scheduler_type": "constant", "warmup_steps": 0,
                                "weight_decay": 0.0, "max_grad_norm": 1.0, "bf16": False}


@dataclass
class GeneratorTrainResult:
    """The saved folder, steps, seconds, trl's per-step log, data counts and the trained (peft) model."""

    folder: Path
    steps: int
    seconds: float
    log: list[dict[str, Any]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    model: Any = None
    tokenizer: Any = None

    def losses(self) -> list[float]:
        """Training loss per logged step."""
        return [float(r["loss"]) for r in self.log if "loss" in r]


def train_generator(base_model: str | os.PathLike, examples: Sequence[GeneratorExample],
                    folder: str | os.PathLike, steps: int, method: str = "lora",
                    adapter_options: dict[str, Any] | None = None, options: dict[str, Any] | None = None,
                    labels: Sequence[str] = ("SUPPORT", "CONTRADICT", "NOT_ENOUGH_INFO"), seed: int = 0,
                    progress: bool = False, source: dict[str, Any] | None = None) -> GeneratorTrainResult:
    """Fine-tune ``base_model`` on ``examples`` for ``steps`` optimizer steps; save the adapter to ``folder``.

    ``source`` (how the examples were built: split, retriever, k, compression budget)
    is recorded in the manifest, so a user of the folder knows what context it expects.
    """
    from datasets import Dataset
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer

    from ..folders import model_fingerprint
    from .adapters import get_adapter
    from .causal_lm import cuda_available, private_causal_lm
    from .distributed import on_main, world_size
    from .peft import add_adapter

    if not examples:
        raise ConfigError("generator training needs at least one example")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ConfigError(f"generator training steps must be an integer >= 1, got {steps!r}")
    opts = {**SFT_DEFAULTS, **(options or {})}
    unknown = sorted(set(opts) - set(SFT_DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown generator training option(s) {unknown} (known: {sorted(SFT_DEFAULTS)})")
    spec = get_adapter(method, "CAUSAL_LM")
    if spec.config is None:
        raise ConfigError("generator training saves an adapter: choose an adapter method, not 'full'")
    adapter_options = dict(adapter_options or {})
    if spec.needs_data({**spec.defaults, **adapter_options}):
        raise ConfigError(f"adapter {method!r} initialises from training batches, which generator SFT "
                          "does not provide; choose a data-free method (lora, dora, pissa, ...)")
    model, tok = private_causal_lm(base_model)
    fingerprint = model_fingerprint(model)
    rows, fit = sft_rows(examples, model, tok, int(opts["max_length"]), list(labels))
    set_seed(seed)
    model = add_adapter(model, method, adapter_options, total_steps=steps, task_type="CAUSAL_LM")
    out_dir = Path(os.fspath(folder))
    args = SFTConfig(output_dir=str(out_dir) + ".work", max_steps=int(steps),
                     per_device_train_batch_size=int(opts["batch_size"]),
                     gradient_accumulation_steps=int(opts["gradient_accumulation_steps"]),
                     learning_rate=float(opts["learning_rate"]), lr_scheduler_type=opts["lr_scheduler_type"],
                     warmup_steps=int(opts["warmup_steps"]), weight_decay=float(opts["weight_decay"]),
                     max_grad_norm=float(opts["max_grad_norm"]), max_length=int(opts["max_length"]),
                     completion_only_loss=True, packing=False, logging_steps=1, save_strategy="no",
                     report_to=[], seed=seed, bf16=bool(opts["bf16"]), fp16=False, use_cpu=not cuda_available(),
                     disable_tqdm=not progress, dataloader_num_workers=0)
    t0 = time.perf_counter()
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_dict(rows), processing_class=tok,
                         callbacks=spec.callbacks(model))
    trainer.train()
    secs = time.perf_counter() - t0
    log = [dict(r) for r in trainer.state.log_history]
    shutil.rmtree(args.output_dir, ignore_errors=True)      # the trainer's scratch folder (nothing saved there)
    losses = [float(r["loss"]) for r in log if "loss" in r]
    data = {"examples": len(examples), "rows": len(rows["prompt"]), **fit}
    base = os.fspath(base_model)
    if Path(base).exists():
        base = str(Path(base).resolve())
    trainer.model.eval()
    on_main(save_generator, trainer.model, tok, out_dir, {
        "base_model": base, "base_fingerprint": fingerprint, "method": method,
        "options": {**spec.defaults, **adapter_options}, "labels": list(labels),
        "training": {"steps": int(steps), "seconds": round(secs, 1), **data, "sft": opts, "seed": seed,
                     "source": dict(source or {}),
                     "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
                     "completion_only_loss": True, "processes": world_size(), "trl_version": _trl_version()}})
    return GeneratorTrainResult(out_dir, int(steps), secs, log, data, trainer.model, tok)


def save_generator(model: Any, tokenizer: Any, folder: str | os.PathLike, manifest: dict[str, Any]) -> Path:
    """The adapter + tokenizer + ``rankkit.json`` (kind ``generator-adapter``), written atomically."""
    from ..folders import write_manifest
    from ..generators.generator import KIND_GENERATOR
    from ..io import atomic_dir

    with atomic_dir(folder) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_manifest(tmp, {"kind": KIND_GENERATOR, **manifest})
    return Path(folder)


def _trl_version() -> str:
    import trl

    return str(trl.__version__)


__all__ = ["SFT_DEFAULTS", "GeneratorTrainResult", "train_generator", "save_generator"]
