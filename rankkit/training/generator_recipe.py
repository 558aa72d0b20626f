"""The generator SFT recipe: YAML -> SciFact claims + BM25 contexts -> SFT with an adapter -> folder.

``rankkit train generator --config configs/smollm2-generator-scifact.yaml``
runs :func:`run_recipe`. Paths in the YAML are relative to the YAML file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError

KEYS = {"base_model", "output_dir", "seed", "threads", "data", "adapter", "train", "labels"}
DATA_KEYS = {"path", "split", "claims", "queries", "k", "tasks", "depth", "compress", "balance", "seed"}


def load_recipe(path: str | os.PathLike) -> dict[str, Any]:
    """The YAML recipe, paths resolved against its folder, unknown keys refused."""
    from ..io import read_yaml_mapping

    p, cfg = read_yaml_mapping(path, "generator recipe", KEYS)
    data = cfg.get("data")
    if not isinstance(data, dict) or "path" not in data:
        raise ConfigError(f"{p}: data: {{path: BEIR folder with claims.jsonl, ...}} is required")
    bad = sorted(set(data) - DATA_KEYS)
    if bad:
        raise ConfigError(f"{p}: unknown data key(s) {bad} (known: {sorted(DATA_KEYS)})")
    if not isinstance(cfg.get("train"), dict) or "steps" not in cfg["train"]:
        raise ConfigError(f"{p}: train: {{steps: N, ...}} is required")
    budget = data.get("compress")
    if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool) or budget < 1):
        raise ConfigError(f"{p}: data.compress must be a token budget (an integer >= 1), got {budget!r}")
    if not isinstance(data.get("balance", False), bool):
        raise ConfigError(f"{p}: data.balance must be true or false, got {data['balance']!r}")
    here = p.resolve().parent
    data["path"] = str((here / data["path"]).resolve())
    data["claims"] = str((Path(data["path"]) / data.get("claims", "claims.jsonl")).resolve())
    cfg["output_dir"] = str((here / cfg.get("output_dir", "generator-out")).resolve())
    base = str(cfg.get("base_model", "smollm2"))
    cfg["base_model"] = str((here / base).resolve()) if (here / base).exists() else base
    return cfg


def build_data(data: dict[str, Any], base_model: str = "smollm2") -> tuple[list[Any], dict[str, Any]]:
    """Examples from the claims of ``split``: BM25 top ``k`` passages, verdict and cited-answer targets.

    With ``balance: true`` the verdict examples are oversampled to equal counts
    (:func:`~rankkit.training.generator_data.balance_verdicts`, seeded by ``data.seed``).
    With ``compress: BUDGET`` the passages go through :class:`rankkit.Compressor`
    (budget counted with ``base_model``'s tokenizer) first, as in
    ``bm25 >> Compressor(budget=BUDGET) >> Generator``: the model trains on the
    compressed context it will read at inference.
    """
    import rankkit as rk

    from .generator_data import TASKS, balance_verdicts, build_examples, load_claims

    split = data.get("split", "train")
    ds = rk.datasets.load_beir(data["path"], split=split, all_queries=True)
    claims = load_claims(data["claims"], split)
    if data.get("queries"):
        claims = {q: claims[q] for q in sorted(claims)[: int(data["queries"])]}
    k = int(data.get("k", 3))
    queries = ds.queries.subset([q for q in claims if q in ds.queries])
    run = (rk.BM25.build(ds.corpus) % max(k, int(data.get("depth", k))))(queries)
    texts, info = None, {}
    if data.get("compress") is not None:
        from ..llm.transformers_backend import TransformersBackend

        comp = rk.Compressor(ds.corpus, budget=data["compress"], k=k, tokenizer=TransformersBackend(base_model))
        run = comp(queries, run)
        texts, info = run.extras["compressed"], {"compress": int(data["compress"]), "compressor": comp.stats}
    exs, counts = build_examples(queries, run, ds.corpus, claims, k=k, tasks=data.get("tasks", TASKS), texts=texts)
    if data.get("balance"):
        exs, added = balance_verdicts(exs, seed=int(data.get("seed", 0)))
        info["balanced"] = added
    return exs, {**counts, "split": split, "k": k, "retriever": "bm25", **info}


def run_recipe(cfg: dict[str, Any], progress: bool = False, examples: list[Any] | None = None) -> dict[str, Any]:
    """Train what ``cfg`` says; a summary (data counts, losses, folder)."""
    from .generator_train import train_generator

    if cfg.get("threads"):
        import torch

        torch.set_num_threads(int(cfg["threads"]))
    data_info: dict[str, Any] = {}
    if examples is None:
        examples, data_info = build_data(cfg["data"], str(cfg.get("base_model", "smollm2")))
    adapter = dict(cfg.get("adapter") or {})
    train = dict(cfg["train"])
    steps = train.pop("steps")
    labels = cfg.get("labels") or ["SUPPORT", "CONTRADICT", "NOT_ENOUGH_INFO"]
    res = train_generator(cfg.get("base_model", "smollm2"), examples, cfg["output_dir"], int(steps),
                          method=str(adapter.get("method", "lora")), adapter_options=adapter.get("options"),
                          options=train, labels=labels, seed=int(cfg.get("seed", 0)), progress=progress,
                          source={k: v for k, v in data_info.items() if k in ("split", "k", "retriever", "compress", "balanced")})
    losses = res.losses()
    return {"folder": str(res.folder), "steps": res.steps, "seconds": round(res.seconds, 1),
            "data": {**data_info, **res.data}, "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None, "losses": losses}


__all__ = ["load_recipe", "build_data", "run_recipe"]
