"""Settings of dense-retriever training, and the YAML recipe of ``rankkit train retriever``.

A recipe (see ``configs/minilm-retriever-scifact.yaml``)::

    base_model: minilm                 # named model, folder or HF id of a sentence-transformers model
    output_dir: ../eval/out/minilm-retriever-scifact
    adapter: {method: lora, options: {r: 16}}   # any method of training.adapters.ADAPTERS, or full
    loss: {name: mnrl, options: {scale: 20}}     # mnrl | cached_mnrl (options: mini_batch_size)
    data: {path: ../../shared/data/beir/scifact, split: train, dev_fraction: 0.0, seed: 0}
    negatives: {mine_from: bm25, num_negatives: 3, depth: 50, refresh_every: 0,
                teacher: minilm-scifact, margin: 0.0}
    train: {steps: 100, batch_size: 32, lr: 2.0e-4}
    index: {output_dir: ../idx/scifact-trained, type: flat}   # optional: re-encode the corpus after training

Every name and key is checked before any model loads (``ConfigError`` naming
the field). Relative paths resolve against the config file's folder.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

#: loss name -> sentence-transformers loss class (module sentence_transformers.sentence_transformer.losses)
LOSSES = {"mnrl": "MultipleNegativesRankingLoss", "cached_mnrl": "CachedMultipleNegativesRankingLoss"}
#: where static negatives come from besides an index folder or a TREC run file
MINERS = ("bm25", "model", "none")
TOP_KEYS = {"base_model", "output_dir", "checkpoint_dir", "adapter", "loss", "data", "negatives", "train",
            "index"}
INDEX_KEYS = {"output_dir", "type", "options"}
DATA_KEYS = {"path", "split", "dev_fraction", "seed", "min_grade", "limit_queries", "cache_dir"}


@dataclass
class NegativesOptions:
    """Hard negatives: where from, how many, how often re-mined, and the false-negative guard."""

    mine_from: str = "bm25"        # bm25 | model (STAR) | none (in-batch only) | index folder | run file
    num_negatives: int = 1         # hard negatives per (query, positive)
    depth: int = 50                # sample negatives from the top `depth` of the ranking ...
    skip_top: int = 0              # ... below the first `skip_top` (likely unjudged positives)
    refresh_every: int = 0         # steps between re-mining from the model being trained (ADORE); 0 = static
    teacher: str | None = "minilm-scifact"  # cross-encoder of the false-negative guard; None = no guard
    margin: float = 0.0            # drop a negative the teacher scores above score(positive) - margin
    oversample: int = 2            # candidates checked by the teacher per negative kept
    teacher_max_length: int = 256
    seed: int = 0

    def check(self) -> None:
        for name in ("num_negatives", "depth", "oversample", "teacher_max_length"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"negatives.{name} must be an integer >= 1, got {getattr(self, name)!r}")
        for name in ("skip_top", "refresh_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ConfigError(f"negatives.{name} must be an integer >= 0, got {getattr(self, name)!r}")
        if self.depth <= self.skip_top:
            raise ConfigError(f"negatives.depth ({self.depth}) must exceed skip_top ({self.skip_top})")
        if self.mine_from == "none" and self.refresh_every:
            raise ConfigError("negatives.refresh_every needs mined negatives (mine_from is 'none')")


@dataclass
class RetrieverTrainOptions:
    """Optimisation settings (the ``train:`` block)."""

    steps: int = 100
    batch_size: int = 32           # (query, positive) pairs per step; the other pairs are in-batch negatives
    lr: float = 2e-4
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 42
    max_seq_length: int | None = None   # window while training and mining (speed); the saved model keeps its own
    loss: str = "mnrl"
    loss_options: dict[str, Any] = field(default_factory=dict)
    encode_batch_size: int = 64    # batch of the corpus encodes done for mining
    logging_steps: int = 10
    threads: int | None = None
    bf16: bool = False
    show_progress: bool = True

    def check(self) -> None:
        for name in ("steps", "batch_size", "encode_batch_size", "logging_steps"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if self.batch_size < 2 and self.loss in LOSSES:
            raise ConfigError("train.batch_size must be >= 2 (the other pairs of a batch are negatives)")
        if not isinstance(self.lr, (int, float)) or self.lr <= 0:
            raise ConfigError(f"train.lr must be > 0, got {self.lr!r}")
        if self.loss not in LOSSES:
            raise ConfigError(f"loss.name: unknown loss {self.loss!r} (choose {', '.join(LOSSES)})")


def _block(value: Any, key: str, default: str, where: str) -> tuple[str, dict[str, Any]]:
    if value is None:
        return default, {}
    if isinstance(value, str):
        return value, {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a name or a mapping with {key!r}, got {value!r}")
    bad = set(value) - {key, "options"}
    if bad:
        raise ConfigError(f"{where}: unknown key(s) {sorted(bad)} (allowed: {key}, options)")
    return str(value.get(key) or default), dict(value.get("options") or {})


def _fill(cls: type, values: Any, where: str) -> Any:
    if values is None:
        return cls()
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, got {values!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    bad = set(values) - known
    if bad:
        raise ConfigError(f"{where}: unknown option(s) {sorted(bad)} (allowed: {sorted(known)})")
    return cls(**values)


@dataclass
class RetrieverRecipe:
    """A validated recipe: everything :func:`rankkit.training.retriever.train_from_recipe` needs."""

    base_model: str
    output_dir: str
    data: dict[str, Any]
    method: str = "lora"
    adapter_options: dict[str, Any] = field(default_factory=dict)
    negatives: NegativesOptions = field(default_factory=NegativesOptions)
    train: RetrieverTrainOptions = field(default_factory=RetrieverTrainOptions)
    checkpoint_dir: str | None = None
    folder: str = "."               # the config file's folder (relative paths)
    index: dict[str, Any] | None = None  # re-encode the data's corpus into this index after training


def parse_recipe(cfg: dict[str, Any], where: str = "config", folder: str = ".") -> RetrieverRecipe:
    """Check a recipe mapping against the registries and option names; no model is loaded."""
    from .adapters import FULL, methods

    if not isinstance(cfg, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    bad = set(cfg) - TOP_KEYS
    if bad:
        raise ConfigError(f"{where}: unknown key(s) {sorted(bad)} (allowed: {sorted(TOP_KEYS)})")
    for key in ("base_model", "output_dir", "data"):
        if not cfg.get(key):
            raise ConfigError(f"{where}: missing required key {key!r}")
    method, options = _block(cfg.get("adapter"), "method", "lora", f"{where}: adapter")
    if method not in methods():
        raise ConfigError(f"{where}: adapter.method: unknown adapter method {method!r} "
                          f"(choose {', '.join(methods())})")
    if method == FULL and options:
        raise ConfigError(f"{where}: adapter.options: full fine-tuning takes no adapter options")
    loss, loss_options = _block(cfg.get("loss"), "name", "mnrl", f"{where}: loss")
    data = cfg["data"]
    if not isinstance(data, dict) or "path" not in data:
        raise ConfigError(f"{where}: data must be a mapping with a BEIR folder 'path'")
    bad = set(data) - DATA_KEYS
    if bad:
        raise ConfigError(f"{where}: data: unknown key(s) {sorted(bad)} (allowed: {sorted(DATA_KEYS)})")
    negatives = _fill(NegativesOptions, cfg.get("negatives"), f"{where}: negatives")
    train = _fill(RetrieverTrainOptions, {**(cfg.get("train") or {}), "loss": loss,
                                          "loss_options": loss_options}, f"{where}: train")
    try:
        negatives.check()
        train.check()
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from e
    index = _index_block(cfg.get("index"), where)
    return RetrieverRecipe(str(cfg["base_model"]), str(cfg["output_dir"]), dict(data), method, options,
                           negatives, train, cfg.get("checkpoint_dir"), folder, index)


def _index_block(index: Any, where: str) -> dict[str, Any] | None:
    """``index: {output_dir, type: flat|hnsw|ivfpq, options: {...}}``: the index built after training."""
    from ..retrievers.faiss_index import index_type

    if index is None:
        return None
    if not isinstance(index, dict) or not index.get("output_dir"):
        raise ConfigError(f"{where}: index must be a mapping with an 'output_dir'")
    bad = set(index) - INDEX_KEYS
    if bad:
        raise ConfigError(f"{where}: index: unknown key(s) {sorted(bad)} (allowed: {sorted(INDEX_KEYS)})")
    try:
        index_type(str(index.get("type", "flat"))).check_options(dict(index.get("options") or {}))
    except ConfigError as e:
        raise ConfigError(f"{where}: index: {e}") from e
    return dict(index)


def load_recipe(path: str | os.PathLike) -> RetrieverRecipe:
    """Read and validate a retriever-training YAML file."""
    from ..io import read_yaml_mapping

    p, cfg = read_yaml_mapping(path, "training config")
    return parse_recipe(cfg, str(p), str(p.resolve().parent))
