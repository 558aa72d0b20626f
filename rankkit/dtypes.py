"""One parser for dtype names given by users ("bf16", "float16", torch.float32, "auto", None)."""

from __future__ import annotations

from typing import Any

from .errors import ConfigError

DTYPES = ("auto", "float32", "bfloat16", "float16")
_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16",
            "float": "float32", "None": "auto"}


def dtype_name(dtype: Any) -> str:
    """Canonical name (one of :data:`DTYPES`) of a dtype given as text, ``torch.dtype`` or None."""
    text = str(dtype).removeprefix("torch.")
    text = _ALIASES.get(text, text)
    if text not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r} (choose {', '.join(DTYPES)})")
    return text


def torch_dtype(dtype: Any, auto: Any = None) -> Any:
    """The ``torch.dtype`` for a name; ``"auto"``/None gives ``auto`` (default None)."""
    name = dtype_name(dtype)
    if name == "auto":
        return auto
    import torch

    return getattr(torch, name)
