"""Data sources of a training config: one registry entry per ``data[i].source``.

A source is a builder ``(spec, cfg) -> (examples, summary)`` plus the keys
its config block allows (``source`` is always allowed). ``spec`` is the
``data[i]`` mapping, ``cfg`` the whole config (for :func:`config_path`);
``summary`` goes into the trained model's manifest (a ``"dev_qids"`` list in
it is collected across sources). Adding one is one call, from anywhere::

    from rankkit.training.sources import register_data_source
    register_data_source("clicks", build_click_groups, {"path", "min_clicks"})
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

Builder = Callable[[dict[str, Any], dict[str, Any]], tuple[list[Any], dict[str, Any]]]


@dataclass(frozen=True)
class DataSource:
    """How to build training examples from a ``data:`` block, and which keys that block may have."""

    build: Builder
    keys: frozenset[str]
    doc: str = ""


def config_path(cfg: dict[str, Any], value: str) -> Path:
    """A path from the config: ``~`` and ``$VARS`` expanded, relative to the config file's folder."""
    p = Path(os.path.expandvars(str(value))).expanduser()
    return p if p.is_absolute() else Path(cfg.get("_dir", ".")) / p


def negatives_stage(spec: Any, dataset: Any, cfg: dict[str, Any]) -> Any:
    """``bm25`` (built on the corpus), an index folder, or a TREC run file."""
    import rankkit as rk

    if spec in (None, "bm25"):
        return rk.BM25.build(dataset.corpus)
    p = config_path(cfg, spec)
    if p.is_dir():
        return rk.load_index(p)
    if p.is_file():
        return rk.Run.read_trec(p)
    raise ConfigError(f"negatives: {spec!r} is neither 'bm25', an index folder nor a run file")


def _beir(src: dict[str, Any], cfg: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    import rankkit as rk

    from .data import groups_from_dataset, split_queries

    path = config_path(cfg, src["path"])
    ds = rk.datasets.load_beir(path, split=src.get("split", "train"))
    train_q, dev_q = split_queries(list(ds.qrels), float(src.get("dev_fraction", 0.0)), int(src.get("seed", 0)))
    stage = negatives_stage(src.get("negatives", "bm25"), ds, cfg)
    cache = config_path(cfg, src["cache_dir"]) if src.get("cache_dir") else None
    groups, rep = groups_from_dataset(ds, stage, num_negatives=int(src.get("num_negatives", 7)),
                                      depth=int(src.get("depth", 100)), repeats=int(src.get("repeats", 1)),
                                      seed=int(src.get("seed", 0)), min_grade=int(src.get("min_grade", 1)),
                                      qids=train_q, cache_dir=cache)
    rep.warn(str(path))
    return groups, {"source": "beir", "path": str(src["path"]), "groups": len(groups),
                    "train_queries": len(train_q), "dev_queries": len(dev_q), "skipped": rep.skipped,
                    "dev_qids": dev_q}


def _triples(src: dict[str, Any], cfg: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    from .data import groups_from_triples

    groups, _ = groups_from_triples(config_path(cfg, src["path"]), limit=src.get("limit"))
    groups = groups * int(src.get("repeats", 1))
    return groups, {"source": "triples", "path": str(src["path"]), "groups": len(groups)}


def _hf(src: dict[str, Any], cfg: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    import datasets

    from .data import groups_from_hf

    kw = {"data_files": src["data_files"]} if src.get("data_files") else {}
    hf = datasets.load_dataset(src["name"], src.get("config"), split=src.get("split", "train"), **kw)
    groups, rep = groups_from_hf(hf, src.get("query_field", "query"), src.get("positive_field", "positive"),
                                 src.get("negative_field", "negative"), limit=src.get("limit"))
    rep.warn(src["name"])
    return groups, {"source": "hf", "name": src["name"], "groups": len(groups), "skipped": rep.skipped}


#: source name -> builder + allowed keys (one entry per source)
DATA_SOURCES: dict[str, DataSource] = {
    "beir": DataSource(_beir, frozenset({"path", "split", "negatives", "depth", "num_negatives", "repeats",
                                         "dev_fraction", "seed", "cache_dir", "min_grade"}),
                       "a BEIR folder; hard negatives mined from a first stage"),
    "triples": DataSource(_triples, frozenset({"path", "limit", "repeats"}),
                          "an MS MARCO-style query/positive/negative TSV"),
    "hf": DataSource(_hf, frozenset({"name", "config", "split", "limit", "query_field", "positive_field",
                                     "negative_field", "data_files"}),
                     "a Hugging Face dataset with query/positive/negative columns"),
}


def register_data_source(name: str, build: Builder, keys: Iterable[str] = (), doc: str = "") -> DataSource:
    """Make ``build`` available as ``data: [{source: name, ...}]``; ``keys`` are the other keys it takes."""
    if not callable(build):
        raise ConfigError(f"register_data_source({name!r}, ...): the builder must be callable")
    src = DataSource(build, frozenset(keys) - {"source"}, doc)
    DATA_SOURCES[str(name)] = src
    return src


def check_source(spec: Any, where: str) -> None:
    """``spec`` names a registered source and uses only the keys it allows."""
    kind = spec.get("source") if isinstance(spec, dict) else None
    if kind not in DATA_SOURCES:
        raise ConfigError(f"{where}.source must be one of {sorted(DATA_SOURCES)}, got {kind!r}")
    bad = set(spec) - DATA_SOURCES[kind].keys - {"source"}
    if bad:
        raise ConfigError(f"{where} ({kind}): unknown key(s) {sorted(bad)} "
                          f"(allowed: {sorted(DATA_SOURCES[kind].keys)})")
