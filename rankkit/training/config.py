"""``rankkit train reranker --config FILE.yaml``: a YAML recipe -> data -> ``trainer.train``.

A recipe names the base model, the adapter method and its options, the
objective (optional, default ``listwise``) and its loss, the data sources
and the optimisation settings; see ``configs/*.yaml``. Every name is checked
against its registry before any model loads (``ConfigError`` naming the
field): ``adapter.method`` -> ``adapters.ADAPTERS``, ``objective.name`` ->
``objectives.OBJECTIVES``, ``loss.name`` -> ``losses.LOSSES`` (or, for
``loss: naive|ips|dla``, the click objective of that name),
``data[i].source`` -> ``sources.DATA_SOURCES``. Relative paths resolve
against the config file's folder.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

from ..errors import ConfigError
from ..io import read_yaml_mapping
from .sources import DATA_SOURCES, check_source, config_path

log = logging.getLogger(__name__)

TOP_KEYS = {"base_model", "output_dir", "checkpoint_dir", "max_length", "adapter", "objective", "loss",
            "data", "train"}


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    p, cfg = read_yaml_mapping(path, "training config")
    cfg["_dir"] = str(p.resolve().parent)
    validate(cfg, str(p))
    return cfg


def _block(value: Any, key: str, default: str) -> tuple[str, dict[str, Any]]:
    """A ``{key: name, options: {...}}`` block (or a bare name) as (name, options)."""
    if value is None:
        return default, {}
    if isinstance(value, str):
        return value, {}
    if not isinstance(value, dict):
        raise ConfigError(f"expected a name or a mapping with {key!r}, got {value!r}")
    return str(value.get(key) or default), dict(value.get("options") or {})


def objective_and_loss(cfg: dict[str, Any], where: str = "config"
                       ) -> tuple[str, dict[str, Any], str, dict[str, Any], bool]:
    """(objective, its options, loss, its options, whether a loss block applies).

    ``loss: dla`` (a loss block naming a registered objective that takes no loss,
    e.g. the click objectives naive / ips / dla) selects that objective, with the
    loss block's options as its options.
    """
    from .losses import LOSSES
    from .objectives import OBJECTIVES, takes_loss

    lname, lopts = _block(cfg.get("loss"), "name", "softmax_ce")
    oname, oopts = _block(cfg.get("objective"), "name", "listwise")
    if cfg.get("loss") is not None and lname.lower() not in LOSSES and lname in OBJECTIVES \
            and not takes_loss(lname):
        if cfg.get("objective") is not None and oname != lname:
            raise ConfigError(f"{where}: loss {lname!r} is the objective {lname!r}; "
                              f"it cannot also use objective {oname!r}")
        return lname, {**lopts, **oopts}, "softmax_ce", {}, False
    return oname, oopts, lname, lopts, cfg.get("loss") is not None


def validate(cfg: dict[str, Any], where: str = "config") -> None:
    """Check names and keys against the registries before anything heavy runs."""
    from .adapters import get_adapter, methods
    from .losses import LOSSES
    from .objectives import make_objective, takes_loss
    from .trainer import TrainOptions

    bad = set(cfg) - TOP_KEYS - {"_dir"}
    if bad:
        raise ConfigError(f"{where}: unknown key(s) {sorted(bad)} (allowed: {sorted(TOP_KEYS)})")
    for key in ("base_model", "output_dir", "data"):
        if key not in cfg:
            raise ConfigError(f"{where}: missing required key {key!r}")
    method, _ = _block(cfg.get("adapter"), "method", "lora")
    if method not in methods():
        raise ConfigError(f"{where}: adapter.method: unknown adapter method {method!r} (choose {', '.join(methods())})")
    oname, oopts, lname, lopts, given_loss = objective_and_loss(cfg, where)
    if lname.lower() not in LOSSES:
        raise ConfigError(f"{where}: loss.name: unknown loss {lname!r} (choose {', '.join(LOSSES)})")
    try:   # a loss block for an objective that takes none is an error, so pass it on when given
        given = takes_loss(oname) or given_loss
        objective = make_objective(oname, oopts, loss=lname if given else None, loss_options=lopts)
    except ConfigError as e:
        raise ConfigError(f"{where}: objective: {e}") from e
    try:
        get_adapter(method, objective.task_type)
    except ConfigError as e:
        raise ConfigError(f"{where}: adapter.method: {e}") from e
    fields = {f.name for f in dataclasses.fields(TrainOptions)}
    bad = set(cfg.get("train") or {}) - fields
    if bad:
        raise ConfigError(f"{where}: train: unknown option(s) {sorted(bad)} (allowed: {sorted(fields)})")
    sources = cfg["data"] if isinstance(cfg["data"], list) else [cfg["data"]]
    for i, src in enumerate(sources):
        check_source(src, f"{where}: data[{i}]")


def build_groups(cfg: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """All examples of all data sources, and a summary (counts, dev qids) for the manifest."""
    sources = cfg["data"] if isinstance(cfg["data"], list) else [cfg["data"]]
    groups: list[Any] = []
    summary: dict[str, Any] = {"sources": []}
    for src in sources:
        examples, info = DATA_SOURCES[src["source"]].build(src, cfg)
        dev = info.pop("dev_qids", None)
        if dev is not None:
            summary.setdefault("dev_qids", []).extend(dev)
        summary["sources"].append(info)
        groups.extend(examples)
    return groups, summary


def run_config(cfg: dict[str, Any], overrides: dict[str, Any] | None = None) -> Any:
    """Train the reranker a validated config describes; returns ``trainer.TrainResult``."""
    from .trainer import TrainOptions, train

    topts = {**(cfg.get("train") or {}), **(overrides or {})}
    opts = TrainOptions(**topts)
    method, adapter_options = _block(cfg.get("adapter"), "method", "lora")
    oname, oopts, lname, lopts, _ = objective_and_loss(cfg)
    groups, summary = build_groups(cfg)
    import random

    random.Random(opts.seed).shuffle(groups)
    out = config_path(cfg, cfg["output_dir"])
    ckpt = config_path(cfg, cfg["checkpoint_dir"]) if cfg.get("checkpoint_dir") else None
    base = str(cfg["base_model"])    # a previous model folder (continual training) is relative to the config too
    if config_path(cfg, base).is_dir() and not os.path.isabs(os.path.expanduser(base)):
        base = str(config_path(cfg, base))
    return train(groups, base, out, method=method, adapter_options=adapter_options,
                 loss=lname, loss_options=lopts, max_length=int(cfg.get("max_length", 256)),
                 options=opts, checkpoint_dir=ckpt, extra_manifest={"data": summary},
                 objective=oname, objective_options=oopts)
