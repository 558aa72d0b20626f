"""``rankkit train retriever --config FILE.yaml``: fine-tune a dense bi-encoder (LoRA or full)."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import Output, command, format_table
from .train import _trainer_output, train_app


@command(train_app, "retriever")
def train_retriever(
    config: Path = typer.Option(..., "--config", help="YAML recipe (e.g. configs/minilm-retriever-scifact.yaml)"),
    steps: int = typer.Option(None, min=1, help="override train.steps"),
    output_dir: Path = typer.Option(None, help="override output_dir"),
    threads: int = typer.Option(None, min=1, help="torch CPU threads"),
    *,
    ui: Output,
) -> None:
    """Train a dense retriever with hard negatives (static or re-mined) and save its folder."""
    from ..training.retriever import train_from_recipe
    from ..training.retriever_config import load_recipe

    recipe = load_recipe(config)
    with _trainer_output(ui):
        res = train_from_recipe(recipe, steps=steps, output_dir=str(output_dir) if output_dir else None,
                                threads=threads, show_progress=False if ui.quiet else None)
    dropped = sum(r.get("false_negatives", 0) for r in res.mining)
    summary = {"folder": str(res.folder), "method": res.method, "steps": res.steps,
               "examples": res.examples, "trainable_parameters": res.trainable,
               "total_parameters": res.total, "trainable_percent": round(100 * res.trainable / res.total, 3),
               "seconds": round(res.seconds, 1), "final_loss": res.final_loss,
               "mining_rounds": len(res.mining), "false_negatives_dropped": dropped,
               "index": str(res.index) if res.index else None}
    ui.result(format_table(["field", "value"], [[k, v] for k, v in summary.items()]), summary)
