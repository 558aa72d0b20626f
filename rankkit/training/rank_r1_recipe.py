"""The Rank-R1 recipe: YAML -> training sets (qrels + BM25) -> SFT warm-up -> GRPO, each phase resumable.

``rankkit train rank-r1 --config configs/rank-r1-smollm2-scifact.yaml`` and
``eval/rank_r1.py`` both run :func:`run_recipe`. A phase whose adapter folder
already holds a manifest is skipped (its manifest and log are reused), so an
interrupted run resumes at the unfinished phase. Paths in the YAML are
relative to the YAML file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .distributed import on_main

KEYS = {"prompt", "base_model", "output_dir", "seed", "data", "max_passage_tokens", "lora", "sft", "grpo", "threads"}


def load_recipe(path: str | os.PathLike) -> dict[str, Any]:
    """The YAML recipe, paths resolved against its folder, unknown keys refused."""
    from ..io import read_yaml_mapping

    p, cfg = read_yaml_mapping(path, "Rank-R1 recipe", KEYS)
    if not isinstance(cfg.get("data"), dict) or "path" not in cfg["data"]:
        raise ConfigError(f"{p}: data: {{path: BEIR folder, ...}} is required")
    here = p.resolve().parent
    cfg["data"]["path"] = str((here / cfg["data"]["path"]).resolve())
    cfg["output_dir"] = str((here / cfg.get("output_dir", "rank-r1-out")).resolve())
    return cfg


def build_examples(data: dict[str, Any], seed: int = 0) -> tuple[list[Any], dict[str, Any]]:
    """Training sets from a BEIR folder's qrels and BM25 top ``depth`` (the first ``queries`` judged ones)."""
    import rankkit as rk

    from .rank_r1_data import examples_from_run

    ds = rk.datasets.load_beir(data["path"], split=data.get("split", "train"))
    qids = sorted(ds.qrels)
    if data.get("queries"):
        qids = qids[:int(data["queries"])]
    depth = int(data.get("depth", 20))
    run = (rk.BM25.build(ds.corpus) % depth)(ds.queries.subset(qids))
    exs, counts = examples_from_run(ds, run, set_size=int(data.get("set_size", 4)), depth=depth,
                                    per_query=int(data.get("per_query", 1)), seed=seed, qids=qids)
    return exs, {**counts, "queries": len(qids), "split": data.get("split", "train"), "depth": depth}


def run_recipe(cfg: dict[str, Any], progress: bool = False, examples: list[Any] | None = None) -> dict[str, Any]:
    """Train what ``cfg`` says (phases with a finished folder are skipped); a summary with both logs."""
    from ..folders import read_manifest
    from .rank_r1_train import grpo_train, reward_per_step, sft_warmup

    if cfg.get("threads"):
        import torch

        torch.set_num_threads(int(cfg["threads"]))
    seed, base = int(cfg.get("seed", 0)), str(cfg.get("base_model", "smollm2"))
    mpt = int(cfg.get("max_passage_tokens", 64))
    style = str(cfg.get("prompt", "rank-r1"))
    out = Path(cfg["output_dir"])
    data_info: dict[str, Any] = {}
    if examples is None:
        examples, data_info = build_examples(cfg["data"], seed)
    summary: dict[str, Any] = {"data": data_info, "base_model": base}
    sft_dir, grpo_dir = out / "sft", out / "grpo"
    init = None
    sft_cfg = dict(cfg.get("sft") or {})
    if int(sft_cfg.get("steps", 0)) > 0:
        if read_manifest(sft_dir) is None:
            steps = int(sft_cfg.pop("steps"))
            res = sft_warmup(base, examples, sft_dir, steps, mpt, sft_cfg, cfg.get("lora"), seed, progress,
                             prompt=style)
            on_main(_write_log, sft_dir, res.log)
        summary["sft"] = {"folder": str(sft_dir), **_phase(sft_dir)}
        init = sft_dir
    grpo_cfg = dict(cfg.get("grpo") or {})
    if int(grpo_cfg.get("steps", 0)) > 0:
        if read_manifest(grpo_dir) is None:
            steps = int(grpo_cfg.pop("steps"))
            res = grpo_train(base, examples, grpo_dir, steps, init, mpt, grpo_cfg, cfg.get("lora"), seed, progress,
                             prompt=style)
            on_main(_write_log, grpo_dir, res.log)
        summary["grpo"] = {"folder": str(grpo_dir), **_phase(grpo_dir)}
        summary["grpo"]["reward_per_step"] = reward_per_step(summary["grpo"]["log"])
    return summary


def _write_log(folder: Path, log: list[dict[str, Any]]) -> None:
    from ..io import atomic_path

    with atomic_path(folder / "trainer_log.json") as f:
        f.write(json.dumps(log, indent=1, default=str))


def _phase(folder: Path) -> dict[str, Any]:
    from ..folders import read_manifest

    log_file = folder / "trainer_log.json"
    return {"manifest": read_manifest(folder),
            "log": json.loads(log_file.read_text()) if log_file.exists() else []}


__all__ = ["load_recipe", "build_examples", "run_recipe"]
