"""``rankkit train rank-r1 --config FILE.yaml``: SFT warm-up then GRPO (trl) for the Rank-R1 setwise reranker."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import Output, command, format_table
from .train import _trainer_output, train_app


@command(train_app, "rank-r1")
def train_rank_r1(
    config: Path = typer.Option(..., "--config", help="YAML recipe (e.g. configs/rank-r1-smollm2-scifact.yaml)"),
    sft_steps: int = typer.Option(None, min=0, help="override sft.steps (0: no warm-up)"),
    grpo_steps: int = typer.Option(None, min=0, help="override grpo.steps"),
    output_dir: Path = typer.Option(None, help="override output_dir (sft/ and grpo/ adapters go under it)"),
    threads: int = typer.Option(None, min=1, help="torch CPU threads"),
    *,
    ui: Output,
) -> None:
    """Train a Rank-R1 reranker (LoRA): supervised format warm-up, then GRPO; finished phases are skipped."""
    from ..training.rank_r1_recipe import load_recipe, run_recipe

    cfg = load_recipe(config)
    for key, value in (("sft", sft_steps), ("grpo", grpo_steps)):
        if value is not None:
            cfg[key] = {**(cfg.get(key) or {}), "steps": value}
    if output_dir:
        cfg["output_dir"] = str(output_dir.resolve())
    if threads:
        cfg["threads"] = threads
    with _trainer_output(ui):
        res = run_recipe(cfg, progress=ui.progress)
    rewards = (res.get("grpo") or {}).get("reward_per_step") or []
    summary = {"output_dir": cfg["output_dir"], "examples": res["data"].get("examples"),
               "sft_steps": ((res.get("sft") or {}).get("manifest") or {}).get("steps"),
               "grpo_steps": ((res.get("grpo") or {}).get("manifest") or {}).get("steps"),
               "first_reward": rewards[0][1] if rewards else None,
               "last_reward": rewards[-1][1] if rewards else None,
               "adapter": (res.get("grpo") or res.get("sft") or {}).get("folder")}
    ui.result(format_table(["field", "value"], [[k, v] for k, v in summary.items()]),
              {**summary, "reward_per_step": rewards})
