"""Parameter-efficient adapters for cross-encoders, through the ``peft`` library.

A method is a peft config class plus default options (``ADAPTERS``: one line
per method); ``"full"`` fine-tunes every weight instead. The scoring head, and
any other weight the base checkpoint did not contain (found from the loader's
``missing_keys``), is trained and saved with the adapter via peft's
``modules_to_save``, and reloading checks that those weights are really in the
adapter folder: a reload never hands back a randomly initialised head (the
known peft / sentence-transformers pitfall).

An adapter folder holds the peft files (``adapter_config.json``,
``adapter_model.safetensors``), the tokenizer and a ``rankkit.json`` manifest
naming the base model; :func:`merge` folds the adapter into a plain HF model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, MissingResourceError, RankkitError
from ..io import atomic_dir, require_file

MANIFEST = "rankkit.json"
KIND_ADAPTER = "cross-encoder-adapter"
KIND_MODEL = "cross-encoder"
FULL = "full"


@dataclass(frozen=True)
class AdapterMethod:
    """A peft config class (by name) and the defaults rankkit uses for rerankers."""

    config: str
    defaults: dict[str, Any] = field(default_factory=dict)
    doc: str = ""


#: method name -> peft config + defaults (one line per method; options override defaults)
ADAPTERS: dict[str, AdapterMethod] = {
    "lora": AdapterMethod("LoraConfig", {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05}, "low-rank update"),
    "dora": AdapterMethod("LoraConfig", {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "use_dora": True},
                          "weight-decomposed LoRA"),
    "adalora": AdapterMethod("AdaLoraConfig", {"init_r": 12, "target_r": 8, "lora_alpha": 32},
                             "LoRA with adaptive rank budget (needs total_step)"),
    "vera": AdapterMethod("VeraConfig", {"r": 256}, "shared random projections, trained scaling vectors"),
    "randlora": AdapterMethod("RandLoraConfig", {"r": 32}, "full-rank update from random bases"),
    "ia3": AdapterMethod("IA3Config", {}, "learned rescaling of activations"),
}


def methods() -> list[str]:
    return [*ADAPTERS, FULL]


def _quiet_transformers() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def load_base(model: str | os.PathLike, num_labels: int = 1) -> tuple[Any, Any, set[str]]:
    """Load ``model`` as a sequence classifier; return (model, tokenizer, newly initialised modules).

    ``model`` is a named default ("minilm"), a folder or an HF id (resolved
    offline). The third value names the top-level modules whose weights were
    missing from the checkpoint (the random head that must be trained and saved).
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ..models import missing_model_error, resolve_model

    _quiet_transformers()
    ref = resolve_model(model)
    try:
        net, info = AutoModelForSequenceClassification.from_pretrained(
            ref.location, num_labels=num_labels, output_loading_info=True)
        tok = AutoTokenizer.from_pretrained(ref.location)
    except (OSError, ValueError) as e:
        raise missing_model_error(str(model), e) from e
    return net, tok, _modules_of(info.get("missing_keys", ()))


def _modules_of(keys: Any) -> set[str]:
    """Module paths (the key without its parameter name) of missing weights."""
    return {k.rsplit(".", 1)[0] for k in keys if "." in k}


def head_name(model: Any) -> str:
    """Attribute name of the classification head (``classifier`` for BERT, ``score`` for LLMs)."""
    for name in ("classifier", "score", "classification_head", "logits_proj"):
        if getattr(model, name, None) is not None:
            return name
    raise ConfigError(f"{type(model).__name__} has no recognised classification head")


def add_adapter(model: Any, method: str, options: dict[str, Any] | None = None,
                new_modules: set[str] | None = None, total_steps: int | None = None) -> Any:
    """Wrap ``model`` with the adapter ``method`` (or unfreeze everything for ``"full"``).

    The head and all ``new_modules`` go into ``modules_to_save`` so they are
    trained and stored with the adapter.
    """
    options = dict(options or {})
    if method == FULL:
        if options:
            raise ConfigError(f"full fine-tuning takes no adapter options, got {sorted(options)}")
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    spec = ADAPTERS.get(method)
    if spec is None:
        raise ConfigError(f"unknown adapter method {method!r} (choose {', '.join(methods())})")
    import peft

    cls = getattr(peft, spec.config)
    kwargs = {**spec.defaults, **options}
    save = {head_name(model), *(m.split(".")[0] for m in (new_modules or ()))}
    kwargs["modules_to_save"] = sorted(save | set(kwargs.get("modules_to_save") or ()))
    if method == "adalora" and "total_step" not in kwargs:
        if not total_steps:
            raise ConfigError("adalora needs total_step (the number of training steps)")
        kwargs["total_step"] = int(total_steps)
        kwargs.setdefault("tinit", max(1, int(total_steps) // 10))
        kwargs.setdefault("tfinal", max(1, int(total_steps) // 5))
    try:
        config = cls(task_type=peft.TaskType.SEQ_CLS, **kwargs)
        return peft.get_peft_model(model, config)
    except TypeError as e:
        raise ConfigError(f"bad option for adapter {method!r} ({spec.config}): {e}") from e
    except ValueError as e:
        raise ConfigError(f"adapter {method!r} cannot wrap {type(model).__name__}: {e}") from e


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts; for peft models the total includes the base."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def save_reranker(model: Any, tokenizer: Any, folder: str | os.PathLike, base_model: str,
                  method: str, options: dict[str, Any] | None = None, max_length: int | None = None,
                  extra: dict[str, Any] | None = None) -> Path:
    """Write an adapter folder (or, for ``"full"``, a plain HF model folder) atomically."""
    manifest: dict[str, Any] = {
        "kind": KIND_MODEL if method == FULL else KIND_ADAPTER,
        "base_model": str(base_model),
        "method": method,
        "options": dict(options or {}),
        "num_labels": int(getattr(model.config, "num_labels", 1)),
        "max_length": max_length,
        **(extra or {}),
    }
    with atomic_dir(folder) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
    return Path(folder)


def read_manifest(folder: str | os.PathLike) -> dict[str, Any] | None:
    p = Path(folder) / MANIFEST
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise RankkitError(f"{p}: not valid JSON ({e})") from e


def _saved_modules(folder: Path) -> set[str]:
    """Top-level module names that have weights in the adapter file."""
    from safetensors import safe_open

    f = folder / "adapter_model.safetensors"
    if not f.exists():
        raise MissingResourceError(f"adapter weights not found: {f}")
    with safe_open(str(f), "pt") as fh:
        keys = list(fh.keys())
    out = set()
    for k in keys:
        k = k.removeprefix("base_model.model.")
        out.add(k.split(".")[0])
    return out


def load_reranker(folder: str | os.PathLike, merged: bool = False) -> tuple[Any, Any, dict[str, Any]]:
    """Load a folder written by :func:`save_reranker`: (model, tokenizer, manifest).

    For an adapter folder the base model must be resolvable (named default,
    folder or cached HF id); a base that is missing raises an error naming it.
    Every weight the base lacks must come from the adapter file, else
    ``RankkitError`` (the head would otherwise be random). ``merged=True``
    folds the adapter into the base weights.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ..models import missing_model_error

    folder = require_file(folder, "reranker folder")
    manifest = read_manifest(folder)
    if manifest is None:
        raise MissingResourceError(f"{folder} has no {MANIFEST}: not a rankkit reranker folder")
    _quiet_transformers()
    if manifest.get("kind") == KIND_MODEL:
        try:
            net, info = AutoModelForSequenceClassification.from_pretrained(folder, output_loading_info=True)
        except (OSError, ValueError) as e:
            raise missing_model_error(str(folder), e) from e
        missing = _modules_of(info.get("missing_keys", ()))
        if missing:
            raise RankkitError(f"{folder}: weights missing for {sorted(missing)}; they would be random")
        return net, AutoTokenizer.from_pretrained(folder), manifest
    if manifest.get("kind") != KIND_ADAPTER:
        raise RankkitError(f"{folder / MANIFEST}: unknown kind {manifest.get('kind')!r}")
    base = manifest.get("base_model")
    if not base:
        raise RankkitError(f"{folder / MANIFEST}: no base_model given")
    try:
        net, _, new_modules = load_base(base, num_labels=int(manifest.get("num_labels", 1)))
    except MissingResourceError as e:
        raise MissingResourceError(f"adapter {folder}: its base model {base!r} is missing ({e})") from e
    saved = _saved_modules(folder)
    lacking = {m.split(".")[0] for m in new_modules} - saved
    if lacking:
        raise RankkitError(
            f"adapter {folder} does not contain trained weights for {sorted(lacking)} that the base "
            f"model {base!r} lacks; loading it would give a random scoring head")
    import peft

    model = peft.PeftModel.from_pretrained(net, str(folder))
    if merged:
        model = model.merge_and_unload()
    model.eval()
    tok = AutoTokenizer.from_pretrained(folder)
    return model, tok, manifest


def merge(folder: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Fold an adapter into its base and save a plain HF sequence-classification folder."""
    model, tok, manifest = load_reranker(folder, merged=True)
    extra = {k: v for k, v in manifest.items()
             if k not in ("kind", "base_model", "method", "options", "num_labels", "max_length")}
    return save_reranker(model, tok, out, base_model=manifest["base_model"], method=FULL,
                         options=None, max_length=manifest.get("max_length"),
                         extra={**extra, "merged_from": manifest.get("method"),
                                "merged_options": manifest.get("options", {})})
