"""Model and index folders: the one place that reads and writes them.

Every folder rankkit writes (a BM25 or dense index, a trained reranker or
adapter) carries a ``rankkit.json`` manifest: a JSON object whose ``"kind"``
says what the folder holds and which class loads it. Inference
(``rerankers/``, ``retrievers/``) and training (``training/``) both import
this module, never each other:

- :func:`read_manifest` / :func:`require_manifest` / :func:`write_manifest`:
  the one manifest contract (a malformed file is a ``DataFormatError`` naming
  it, a wrong kind a ``ConfigError``);
- :func:`model_fingerprint`: a cheap hash of a torch model's weights;
- :func:`save_reranker` / :func:`load_reranker` / :func:`merge`: cross-encoder
  folders, plain HF models or peft adapters over a named base. ``peft`` and
  ``transformers`` are imported inside the functions, so importing this
  module stays light.

A new folder kind needs a ``kind`` string and a loader; the manifest code is
shared.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import ConfigError, DataFormatError, MissingResourceError, RankkitError
from .io import PathLike, atomic_dir, require_file

MANIFEST = "rankkit.json"
#: a peft adapter over a base model named in the manifest
KIND_ADAPTER = "cross-encoder-adapter"
#: a plain HF sequence-classification folder (full fine-tune or merged adapter)
KIND_MODEL = "cross-encoder"
#: manifest keys :func:`save_reranker` writes itself (the rest is caller metadata)
RERANKER_KEYS = ("kind", "base_model", "method", "options", "num_labels", "max_length")


# ------------------------------------------------------------------------ manifests
def read_manifest(folder: PathLike, kind: str | Iterable[str] | None = None) -> dict[str, Any] | None:
    """The folder's manifest, or None when it has none (e.g. a plain HF model folder).

    A manifest that is not a JSON object with a ``"kind"`` is a
    ``DataFormatError`` naming the file; with ``kind`` given (one name or
    several), any other kind is a ``ConfigError``.
    """
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataFormatError(f"not valid JSON ({e})", path) from e
    if not isinstance(manifest, dict) or not isinstance(manifest.get("kind"), str):
        raise DataFormatError("not a rankkit manifest: expected a JSON object with a \"kind\"", path)
    if kind is not None:
        allowed = [kind] if isinstance(kind, str) else list(kind)
        if manifest["kind"] not in allowed:
            want = " or ".join(repr(k) for k in allowed)
            raise ConfigError(f"{Path(folder)} holds a {manifest['kind']!r} folder, not {want}")
    return manifest


def require_manifest(folder: PathLike, kind: str | Iterable[str] | None = None,
                     what: str = "index") -> dict[str, Any]:
    """:func:`read_manifest` for a folder that must be a rankkit ``what`` (missing -> clear error)."""
    p = Path(folder)
    if not p.is_dir():
        raise MissingResourceError(f"{what} folder not found: {p}")
    manifest = read_manifest(p, kind)
    if manifest is None:
        raise MissingResourceError(f"{p} is not a rankkit {what} (no {MANIFEST})")
    return manifest


def write_manifest(folder: PathLike, manifest: dict[str, Any]) -> Path:
    """Write ``manifest`` into ``folder`` (usually the temporary folder of ``atomic_dir``)."""
    if not isinstance(manifest.get("kind"), str):
        raise ConfigError("a manifest needs a \"kind\" naming what the folder holds")
    path = Path(folder) / MANIFEST
    path.write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
    return path


def model_fingerprint(model: Any, header: str = "") -> str:
    """A short hash of ``header`` and a sample of every weight tensor of a torch model.

    Cheap (a few values per tensor), yet it tells two fine-tunes of one base
    apart, so an index is never searched with another model's vectors.
    """
    return _hash_tensors(model.state_dict().items(), header)


def _hash_tensors(items: Iterable[tuple[str, Any]], header: str = "") -> str:
    h = hashlib.sha256()
    h.update(header.encode())
    for name, p in items:
        flat = p.detach().reshape(-1)
        h.update(name.encode())
        h.update(str(tuple(p.shape)).encode())
        sample = flat[:: max(1, flat.numel() // 64)][:64]
        h.update(sample.float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


#: top-level modules that are scoring heads (trained per adapter, so never part of the base)
HEAD_MODULES = ("classifier", "score", "classification_head", "logits_proj")


def base_fingerprint(model: Any, skip: Iterable[str] = ()) -> str:
    """:func:`model_fingerprint` of the base weights only: the same for a plain base model and
    for that base under any peft adapter (adapter weights, heads and ``skip`` modules left out).

    Saved in adapter folders (``"base_fingerprint"``) so an adapter is never put on
    another base model (``rankkit.rerankers.multi_adapter``).
    """
    net = model.get_base_model() if hasattr(model, "get_base_model") else model
    adapters = set(getattr(model, "peft_config", None) or ())
    drop = set(HEAD_MODULES) | {s.split(".")[0] for s in skip}
    items = []
    for name, p in net.state_dict().items():
        parts = name.split(".")
        if parts[0] in drop or adapters.intersection(parts):
            continue
        items.append((".".join(x for x in parts if x != "base_layer"), p))
    return _hash_tensors(sorted(items, key=lambda kv: kv[0]), "base")


# ------------------------------------------------------------------------ rerankers
def load_base(model: str | os.PathLike, num_labels: int = 1) -> tuple[Any, Any, set[str]]:
    """Load ``model`` as a sequence classifier; return (model, tokenizer, newly initialised modules).

    ``model`` is a named default ("minilm"), a folder or an HF id (resolved
    offline); a rankkit adapter folder loads merged, so a model trains on from
    a previous one (continual training). The third value names the modules whose weights were missing
    from the checkpoint (the random head that must be trained and saved).
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from .models import missing_model_error, resolve_model
    from .quiet import quiet_transformers

    quiet_transformers()
    ref = resolve_model(model)
    previous = read_manifest(ref.path) if ref.path is not None and ref.path.is_dir() else None
    if previous is not None and previous.get("kind") in (KIND_ADAPTER, KIND_MODEL) and \
            int(previous.get("num_labels", 1)) != int(num_labels):
        raise ConfigError(f"{ref.path} has a head of {previous.get('num_labels')} labels, but {num_labels} "
                          f"are wanted: a model trained on from it must keep its head")
    if previous is not None and previous.get("kind") == KIND_ADAPTER:
        # training on from a rankkit adapter folder (continual training): its merged weights
        net, tok, _ = load_reranker(ref.path, merged=True)
        return net, tok, set()
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


def save_reranker(model: Any, tokenizer: Any, folder: PathLike, base_model: str, method: str,
                  options: dict[str, Any] | None = None, max_length: int | None = None,
                  extra: dict[str, Any] | None = None) -> Path:
    """Write a reranker folder atomically: a peft adapter, or a plain HF model for anything else."""
    # a method that saves a merged full model (OSF) says so with ``rankkit_kind``
    adapter = hasattr(model, "peft_config") and getattr(model, "rankkit_kind", KIND_ADAPTER) == KIND_ADAPTER
    manifest: dict[str, Any] = {
        "kind": KIND_ADAPTER if adapter else KIND_MODEL,
        "base_model": str(base_model),
        "method": method,
        "options": dict(options or {}),
        "num_labels": int(getattr(model.config, "num_labels", 1)),
        "max_length": max_length,
        "model_fingerprint": model_fingerprint(model),
        **(extra or {}),
    }
    if adapter:
        manifest["base_fingerprint"] = base_fingerprint(model, getattr(
            model.peft_config.get("default"), "modules_to_save", None) or ())
    # an adapter method may save differently (PiSSA / OLoRA / LoRA-GA: converted to plain LoRA)
    save = getattr(model, "rankkit_save_pretrained", None) or model.save_pretrained
    with atomic_dir(folder) as tmp:
        save(tmp)
        tokenizer.save_pretrained(tmp)
        write_manifest(tmp, manifest)
    return Path(folder)


def _saved_modules(folder: Path) -> set[str]:
    """Top-level module names that have weights in the adapter file."""
    from safetensors import safe_open

    f = folder / "adapter_model.safetensors"
    if not f.exists():
        raise MissingResourceError(f"adapter weights not found: {f}")
    with safe_open(str(f), "pt") as fh:
        keys = list(fh.keys())
    return {k.removeprefix("base_model.model.").split(".")[0] for k in keys}


def load_reranker(folder: PathLike, merged: bool = False) -> tuple[Any, Any, dict[str, Any]]:
    """Load a folder written by :func:`save_reranker`: (model, tokenizer, manifest).

    For an adapter folder the base model must be resolvable (named default,
    folder or cached HF id); a missing base raises an error naming it. Every
    weight the base lacks must come from the adapter file, else
    ``RankkitError`` (the head would otherwise be random: the known peft /
    sentence-transformers pitfall). ``merged=True`` folds the adapter into
    the base weights.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from .models import missing_model_error
    from .quiet import quiet_transformers

    folder = require_file(folder, "reranker folder")
    manifest = require_manifest(folder, (KIND_MODEL, KIND_ADAPTER), what="reranker folder")
    quiet_transformers()
    if manifest["kind"] == KIND_MODEL:
        try:
            net, info = AutoModelForSequenceClassification.from_pretrained(folder, output_loading_info=True)
        except (OSError, ValueError) as e:
            raise missing_model_error(str(folder), e) from e
        missing = _modules_of(info.get("missing_keys", ()))
        if missing:
            raise RankkitError(f"{folder}: weights missing for {sorted(missing)}; they would be random")
        net.eval()
        return net, AutoTokenizer.from_pretrained(folder), manifest
    _check_method(folder, manifest.get("method"))
    base = manifest.get("base_model")
    if not base:
        raise DataFormatError("no base_model given", folder / MANIFEST)
    try:
        net, _, new_modules = load_base(base, num_labels=int(manifest.get("num_labels", 1)))
    except MissingResourceError as e:
        raise MissingResourceError(f"adapter {folder}: its base model {base!r} is missing ({e})") from e
    lacking = {m.split(".")[0] for m in new_modules} - _saved_modules(folder)
    if lacking:
        raise RankkitError(
            f"adapter {folder} does not contain trained weights for {sorted(lacking)} that the base "
            f"model {base!r} lacks; loading it would give a random scoring head")
    import peft

    model = peft.PeftModel.from_pretrained(net, str(folder))
    if merged:
        model = model.merge_and_unload()
    model.eval()
    return model, AutoTokenizer.from_pretrained(folder), manifest


#: adapter methods whose folders this version loads: the training registry's built-in names
#: (kept here so inference needs no import of ``rankkit.training``, which adds registered ones)
ADAPTER_METHODS: set[str] = {"lora", "dora", "pissa", "olora", "lora_ga", "eva", "adalora", "vera", "randlora",
                             "tinylora", "lora_xs", "lora_sb", "ia3", "osf", "full"}


def _check_method(folder: Path, method: Any) -> None:
    """An adapter saved by a method this version does not know is refused, naming the known ones."""
    if method not in ADAPTER_METHODS:
        raise ConfigError(f"adapter {folder} was saved with adapter method {method!r}, unknown to this "
                          f"rankkit version (known: {', '.join(sorted(ADAPTER_METHODS))})")


def merge(folder: PathLike, out: PathLike) -> Path:
    """Fold an adapter into its base and save a plain HF sequence-classification folder."""
    model, tok, manifest = load_reranker(folder, merged=True)
    extra = {k: v for k, v in manifest.items() if k not in (*RERANKER_KEYS, "model_fingerprint", "base_fingerprint")}
    return save_reranker(model, tok, out, base_model=manifest["base_model"], method="full",
                         options=None, max_length=manifest.get("max_length"),
                         extra={**extra, "merged_from": manifest.get("method"),
                                "merged_options": manifest.get("options", {})})
