"""``rankkit train reranker --config FILE.yaml``: a YAML recipe -> data -> ``trainer.train``.

A recipe names the base model, the adapter method and its options, the loss,
the data sources and the optimisation settings; see ``configs/*.yaml``.
Unknown keys, losses or adapter methods are ``ConfigError``s naming the field,
checked before any model is loaded. Relative paths resolve against the
config file's folder.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..io import require_file

log = logging.getLogger(__name__)

TOP_KEYS = {"base_model", "output_dir", "checkpoint_dir", "max_length", "adapter", "loss", "data", "train"}
SOURCE_KEYS = {
    "beir": {"source", "path", "split", "negatives", "depth", "num_negatives", "repeats",
             "dev_fraction", "seed", "cache_dir", "min_grade"},
    "triples": {"source", "path", "limit", "repeats"},
    "hf": {"source", "name", "config", "split", "limit", "query_field", "positive_field",
           "negative_field", "data_files"},
}


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    import yaml

    p = require_file(path, "training config")
    try:
        cfg = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML ({e})") from e
    if not isinstance(cfg, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level")
    cfg["_dir"] = str(p.resolve().parent)
    validate(cfg, str(p))
    return cfg


def validate(cfg: dict[str, Any], where: str = "config") -> None:
    """Check names and keys before anything heavy runs."""
    from .losses import LOSSES
    from .peft import methods
    from .trainer import TrainOptions

    bad = set(cfg) - TOP_KEYS - {"_dir"}
    if bad:
        raise ConfigError(f"{where}: unknown key(s) {sorted(bad)} (allowed: {sorted(TOP_KEYS)})")
    for key in ("base_model", "output_dir", "data"):
        if key not in cfg:
            raise ConfigError(f"{where}: missing required key {key!r}")
    adapter = cfg.get("adapter") or {"method": "lora"}
    method = adapter.get("method") if isinstance(adapter, dict) else adapter
    if method not in methods():
        raise ConfigError(f"{where}: adapter.method: unknown adapter method {method!r} (choose {', '.join(methods())})")
    loss = cfg.get("loss") or {"name": "softmax_ce"}
    lname = loss.get("name") if isinstance(loss, dict) else loss
    if str(lname).lower() not in LOSSES:
        raise ConfigError(f"{where}: loss.name: unknown loss {lname!r} (choose {', '.join(LOSSES)})")
    fields = {f.name for f in dataclasses.fields(TrainOptions)}
    bad = set(cfg.get("train") or {}) - fields
    if bad:
        raise ConfigError(f"{where}: train: unknown option(s) {sorted(bad)} (allowed: {sorted(fields)})")
    sources = cfg["data"] if isinstance(cfg["data"], list) else [cfg["data"]]
    for i, src in enumerate(sources):
        kind = src.get("source") if isinstance(src, dict) else None
        if kind not in SOURCE_KEYS:
            raise ConfigError(f"{where}: data[{i}].source must be one of {sorted(SOURCE_KEYS)}, got {kind!r}")
        bad = set(src) - SOURCE_KEYS[kind]
        if bad:
            raise ConfigError(f"{where}: data[{i}] ({kind}): unknown key(s) {sorted(bad)}")


def _path(cfg: dict[str, Any], value: str) -> Path:
    p = Path(os.path.expandvars(str(value))).expanduser()
    return p if p.is_absolute() else Path(cfg.get("_dir", ".")) / p


def negatives_stage(spec: Any, dataset: Any, cfg: dict[str, Any]) -> Any:
    """``bm25`` (built on the corpus), an index folder, or a TREC run file."""
    import rankkit as rk

    if spec in (None, "bm25"):
        return rk.BM25.build(dataset.corpus)
    p = _path(cfg, spec)
    if p.is_dir():
        return rk.load_index(p)
    if p.is_file():
        return rk.Run.read_trec(p)
    raise ConfigError(f"negatives: {spec!r} is neither 'bm25', an index folder nor a run file")


def build_groups(cfg: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """All groups of all data sources, and a summary (counts, dev qids) for the manifest."""
    import rankkit as rk

    from .data import groups_from_dataset, groups_from_hf, groups_from_triples, split_queries

    sources = cfg["data"] if isinstance(cfg["data"], list) else [cfg["data"]]
    groups: list[Any] = []
    summary: dict[str, Any] = {"sources": []}
    for src in sources:
        kind = src["source"]
        if kind == "beir":
            path = _path(cfg, src["path"])
            ds = rk.datasets.load_beir(path, split=src.get("split", "train"))
            train_q, dev_q = split_queries(list(ds.qrels), float(src.get("dev_fraction", 0.0)),
                                           int(src.get("seed", 0)))
            stage = negatives_stage(src.get("negatives", "bm25"), ds, cfg)
            cache = _path(cfg, src["cache_dir"]) if src.get("cache_dir") else None
            g, rep = groups_from_dataset(ds, stage, num_negatives=int(src.get("num_negatives", 7)),
                                         depth=int(src.get("depth", 100)), repeats=int(src.get("repeats", 1)),
                                         seed=int(src.get("seed", 0)), min_grade=int(src.get("min_grade", 1)),
                                         qids=train_q, cache_dir=cache)
            rep.warn(str(path))
            summary["sources"].append({"source": "beir", "path": str(src["path"]), "groups": len(g),
                                       "train_queries": len(train_q), "dev_queries": len(dev_q),
                                       "skipped": rep.skipped})
            summary.setdefault("dev_qids", []).extend(dev_q)
        elif kind == "triples":
            g, rep = groups_from_triples(_path(cfg, src["path"]), limit=src.get("limit"))
            g = g * int(src.get("repeats", 1))
            summary["sources"].append({"source": "triples", "path": str(src["path"]), "groups": len(g)})
        else:
            import datasets

            kw = {"data_files": src["data_files"]} if src.get("data_files") else {}
            hf = datasets.load_dataset(src["name"], src.get("config"), split=src.get("split", "train"), **kw)
            g, rep = groups_from_hf(hf, src.get("query_field", "query"), src.get("positive_field", "positive"),
                                    src.get("negative_field", "negative"), limit=src.get("limit"))
            rep.warn(src["name"])
            summary["sources"].append({"source": "hf", "name": src["name"], "groups": len(g),
                                       "skipped": rep.skipped})
        groups.extend(g)
    return groups, summary


def run_config(cfg: dict[str, Any], overrides: dict[str, Any] | None = None) -> Any:
    """Train the reranker a validated config describes; returns ``trainer.TrainResult``."""
    from .trainer import TrainOptions, train

    topts = {**(cfg.get("train") or {}), **(overrides or {})}
    opts = TrainOptions(**topts)
    adapter = cfg.get("adapter") or {"method": "lora"}
    if isinstance(adapter, str):
        adapter = {"method": adapter}
    loss = cfg.get("loss") or {"name": "softmax_ce"}
    if isinstance(loss, str):
        loss = {"name": loss}
    groups, summary = build_groups(cfg)
    import random

    random.Random(opts.seed).shuffle(groups)
    out = _path(cfg, cfg["output_dir"])
    ckpt = _path(cfg, cfg["checkpoint_dir"]) if cfg.get("checkpoint_dir") else None
    return train(groups, str(cfg["base_model"]), out, method=adapter["method"],
                 adapter_options=adapter.get("options") or {}, loss=loss["name"],
                 loss_options=loss.get("options") or {}, max_length=int(cfg.get("max_length", 256)),
                 options=opts, checkpoint_dir=ckpt, extra_manifest={"data": summary})
