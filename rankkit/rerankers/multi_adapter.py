"""Many reranker adapters on one base model: the base is loaded once, the adapter is chosen per call.

A service with one adapter per domain keeps one copy of the base weights and
a small set of adapter weights per domain (LoRA matrices and the adapter's
own scoring head). Loading goes through peft's multi-adapter API
(``PeftModel.from_pretrained`` for the first folder, ``load_adapter`` for the
rest); each adapter's head is its own copy in peft's ``modules_to_save``
wrapper, so ``set_adapter`` switches the head with the adapter and the
scores are exactly those of the adapter loaded alone.

An adapter trained on another base model is refused: adapter folders record
the fingerprint of their base weights (``base_fingerprint`` in
``rankkit.json``); older folders without it must name the same base model.
Adapters that disagree on the head (number of labels) or on the adapter type
are refused too. ``rk.CrossEncoder(base, adapters={...}, adapter=name)`` uses
this module; ``CrossEncoder.use(name)`` gives a reranker bound to another adapter.
The active adapter is state of the shared model, switched at the start of
every ``predict``: score with one adapter at a time (not from several threads).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, RankkitError


@dataclass
class AdapterSet:
    """The base model with every adapter loaded, its tokenizer and each adapter's manifest."""

    model: Any
    tokenizer: Any
    manifests: dict[str, dict[str, Any]]
    base: str

    @property
    def names(self) -> list[str]:
        return list(self.manifests)


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name or "." in name or name != name.strip():
        raise ConfigError(f"adapter name {name!r}: use a non-empty name without dots or spaces")
    return name


def _same_base(name: str, folder: Path, manifest: dict[str, Any], base: str, fingerprint: str) -> None:
    """Refuse an adapter whose recorded base differs from ``base`` (fingerprint, else resolved name)."""
    from ..models import resolve_model

    saved = manifest.get("base_fingerprint")
    if saved is not None:
        if saved != fingerprint:
            raise ConfigError(f"adapter {name!r} ({folder}) was trained on another base model "
                              f"({manifest.get('base_model')!r}, base fingerprint {saved}) than {base!r} "
                              f"(fingerprint {fingerprint}); load it on its own base")
        return

    def where(model: Any) -> str | None:
        try:
            ref = resolve_model(str(model))
        except RankkitError:
            return None
        return str(ref.path.resolve()) if ref.path is not None else ref.hub_id

    if where(manifest.get("base_model")) != where(base) or where(base) is None:
        raise ConfigError(f"adapter {name!r} ({folder}) was trained on base model "
                          f"{manifest.get('base_model')!r}, not {base!r} (its folder records no base "
                          f"fingerprint, so only the same base model is accepted)")


def load_adapters(base: str | os.PathLike | None, folders: Mapping[str, str | os.PathLike]) -> AdapterSet:
    """Load every adapter folder of ``folders`` (name -> folder) onto one copy of ``base``.

    ``base=None`` takes the base model named by the adapters' manifests (they
    must agree). Every adapter must be a rankkit adapter folder on that base,
    with the same number of labels and adapter type, and must carry its head.
    """
    from ..folders import (
        KIND_ADAPTER,
        KIND_MODEL,
        _check_method,
        _saved_modules,
        base_fingerprint,
        load_base,
        require_manifest,
    )
    from ..io import require_file
    from ..models import NAMED_MODELS, resolve_model

    if not folders:
        raise ConfigError("adapters= needs at least one name -> adapter folder")
    manifests: dict[str, dict[str, Any]] = {}
    paths: dict[str, Path] = {}
    for name, folder in folders.items():
        _check_name(name)
        if str(folder) in NAMED_MODELS:             # e.g. "minilm-scifact"
            folder = resolve_model(str(folder)).path or folder
        path = require_file(folder, f"adapter folder of {name!r}")
        manifest = require_manifest(path, (KIND_ADAPTER, KIND_MODEL), what="reranker folder")
        if manifest["kind"] != KIND_ADAPTER:
            raise ConfigError(f"adapter {name!r} ({path}) is a full model, not an adapter: load it on its own")
        _check_method(path, manifest.get("method"))
        manifests[name], paths[name] = manifest, path
    labels = {n: int(m.get("num_labels", 1)) for n, m in manifests.items()}
    if len(set(labels.values())) > 1:
        raise ConfigError(f"the adapters disagree on the head (number of labels: {labels}); "
                          "one base model serves adapters with the same head shape only")
    if base is None:
        named = {str(m.get("base_model")) for m in manifests.values()}
        if len(named) != 1:
            raise ConfigError(f"the adapters name different base models ({sorted(named)}); pass model=")
        base = named.pop()
    net, tok, new_modules = load_base(base, num_labels=next(iter(labels.values())))
    fingerprint = base_fingerprint(net, skip=new_modules)
    for name, manifest in manifests.items():
        _same_base(name, paths[name], manifest, str(base), fingerprint)
        lacking = {m.split(".")[0] for m in new_modules} - _saved_modules(paths[name])
        if lacking:
            raise RankkitError(f"adapter {name!r} ({paths[name]}) has no trained weights for "
                               f"{sorted(lacking)}, which the base model lacks: its head would be random")
    import peft

    names = list(manifests)
    try:
        model = peft.PeftModel.from_pretrained(net, str(paths[names[0]]), adapter_name=names[0])
        for name in names[1:]:
            model.load_adapter(str(paths[name]), adapter_name=name)
    except (ValueError, TypeError, KeyError) as e:
        raise ConfigError(f"cannot load these adapters onto one model ({type(e).__name__}: "
                          f"{str(e).splitlines()[0][:200]}); adapters of different types cannot share it") from e
    model.set_adapter(names[0], inference_mode=True)
    model.eval()
    return AdapterSet(model, tok, manifests, str(base))


def activate(model: Any, name: str) -> None:
    """Make ``name`` the adapter (and head) the model computes with."""
    if name not in getattr(model, "peft_config", {}):
        raise ConfigError(f"no adapter named {name!r} is loaded (loaded: {', '.join(model.peft_config)})")
    if model.active_adapter != name:
        model.set_adapter(name, inference_mode=True)     # stays frozen
        model.eval()


def adapter_bytes(model: Any, name: str) -> int:
    """Bytes of the parameters and buffers that belong to adapter ``name`` (its extra memory)."""
    import itertools

    total = 0
    for key, t in itertools.chain(model.named_parameters(), model.named_buffers()):
        if name in key.split("."):
            total += t.numel() * t.element_size()
    return total


def parameter_bytes(model: Any) -> int:
    """Bytes of every parameter and buffer of ``model`` (shared tensors counted once)."""
    import itertools

    seen: set[int] = set()
    total = 0
    for _, t in itertools.chain(model.named_parameters(), model.named_buffers()):
        if t.data_ptr() in seen:
            continue
        seen.add(t.data_ptr())
        total += t.numel() * t.element_size()
    return total


__all__ = ["AdapterSet", "activate", "adapter_bytes", "load_adapters", "parameter_bytes"]
