"""``rankkit train generator --config FILE.yaml``: supervised fine-tuning of the RAG generator (trl, adapters)."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import Output, command, format_table
from .train import _trainer_output, train_app


@command(train_app, "generator")
def train_generator(
    config: Path = typer.Option(..., "--config", help="YAML recipe (e.g. configs/smollm2-generator-scifact.yaml)"),
    steps: int = typer.Option(None, min=1, help="override train.steps"),
    output_dir: Path = typer.Option(None, help="override output_dir (the adapter folder)"),
    threads: int = typer.Option(None, min=1, help="torch CPU threads"),
    *,
    ui: Output,
) -> None:
    """Fine-tune a generator on retrieved-context examples; rk.Generator(model=FOLDER) loads the result."""
    from ..training.generator_recipe import load_recipe, run_recipe

    cfg = load_recipe(config)
    if steps:
        cfg["train"]["steps"] = steps
    if output_dir:
        cfg["output_dir"] = str(output_dir.resolve())
    if threads:
        cfg["threads"] = threads
    with _trainer_output(ui):
        res = run_recipe(cfg, progress=ui.progress)
    summary = {k: res[k] for k in ("folder", "steps", "seconds", "first_loss", "last_loss")}
    summary.update({k: res["data"].get(k) for k in ("examples", "rows", "truncated_examples", "dropped")})
    ui.result(format_table(["field", "value"], [[k, v] for k, v in summary.items()]), res)
