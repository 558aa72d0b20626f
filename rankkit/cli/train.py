"""``rankkit train reranker|first --config FILE.yaml``: fine-tune a cross-encoder or a FIRST LLM reranker."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import typer

from . import app
from .common import Output, command, format_table

train_app = typer.Typer(help="Train models from a YAML recipe.", no_args_is_help=True)
app.add_typer(train_app, name="train")


@train_app.callback()
def _one_voice() -> None:
    """Under ``accelerate launch`` / ``torchrun`` only the main process prints (every ``train`` command).

    The other processes train alongside it but print no result and no warnings
    (errors still reach stderr); the main process writes the folders.
    """
    from ..training.distributed import is_main_process

    if is_main_process():
        return
    import logging

    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the rest of this process
    logging.getLogger("rankkit").setLevel(logging.ERROR)


@contextlib.contextmanager
def _trainer_output(out: Output) -> Iterator[None]:
    """Keep stdout for the result: the HF Trainer prints its log lines there.

    They go to stderr, beside the progress bar; with ``--quiet`` both are dropped.
    """
    if not out.quiet:
        with contextlib.redirect_stdout(sys.stderr):
            yield
        return
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), \
            contextlib.redirect_stderr(null):
        yield


def _run_recipe(cfg: dict, steps: int | None, output_dir: Path | None, threads: int | None, ui: Output) -> None:
    """Train what a loaded recipe describes (overrides applied) and print the summary."""
    from ..training.config import run_config

    overrides = {}
    if steps:
        overrides["steps"] = steps
    if threads:
        overrides["threads"] = threads
    if output_dir:
        cfg["output_dir"] = str(output_dir.resolve())
        cfg["checkpoint_dir"] = f"{cfg['output_dir']}.checkpoints"
    with _trainer_output(ui):
        res = run_config(cfg, overrides)
    summary = {"folder": str(res.folder), "steps": res.steps, "trainable_parameters": res.trainable,
               "total_parameters": res.total, "trainable_percent": round(100 * res.trainable / res.total, 3),
               "seconds": round(res.seconds, 1), "seconds_per_step": round(res.seconds_per_step, 2),
               "final_loss": res.final_loss, "truncated_pairs": res.truncated_pairs, "pairs": res.pairs}
    ui.result(format_table(["field", "value"], [[k, v] for k, v in summary.items()]), summary)


@command(train_app, "reranker")
def train_reranker(
    config: Path = typer.Option(..., "--config", help="YAML recipe (see configs/)"),
    steps: int = typer.Option(None, min=1, help="override train.steps"),
    output_dir: Path = typer.Option(None, help="override output_dir"),
    threads: int = typer.Option(None, min=1, help="torch CPU threads"),
    *,
    ui: Output,
) -> None:
    """Train a cross-encoder reranker (adapter or full fine-tuning) and save its folder."""
    from ..training.config import load_config

    _run_recipe(load_config(config), steps, output_dir, threads, ui)


@command(train_app, "first")
def train_first(
    config: Path = typer.Option(..., "--config", help="YAML recipe (e.g. configs/first-smollm2-scifact.yaml)"),
    steps: int = typer.Option(None, min=1, help="override train.steps"),
    output_dir: Path = typer.Option(None, help="override output_dir"),
    threads: int = typer.Option(None, min=1, help="torch CPU threads"),
    *,
    ui: Output,
) -> None:
    """Train a FIRST listwise LLM reranker (LoRA on a causal LM) and save its adapter folder."""
    from ..errors import ConfigError
    from ..training.config import load_config

    cfg = load_config(config)
    objective = cfg.get("objective")
    name = objective.get("name") if isinstance(objective, dict) else objective
    if name != "first":
        raise ConfigError(f"{config}: `rankkit train first` needs objective: {{name: first}}, got {name!r} "
                          "(cross-encoders train with `rankkit train reranker`)")
    _run_recipe(cfg, steps, output_dir, threads, ui)


@command(train_app, "merge")
def merge_adapter(
    adapter: Path = typer.Argument(..., help="rankkit adapter folder (from `rankkit train reranker`)"),
    out: Path = typer.Option(..., help="folder for the merged plain Hugging Face model"),
    *,
    ui: Output,
) -> None:
    """Fold an adapter into its base model for deployment (no peft needed to load it)."""
    from ..training.peft import merge

    folder = merge(adapter, out)
    ui.result(f"merged {adapter} -> {folder}", {"adapter": str(adapter), "out": str(folder)})
