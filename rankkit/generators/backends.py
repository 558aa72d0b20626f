"""One interface over the ways to run an LLM: transformers, vLLM, an HTTP endpoint.

The :class:`~rankkit.generators.hf.Generator` stage builds prompts and maps
citations; a backend only renders chat messages, counts tokens, generates and
scores label continuations, each over a whole list of prompts at once. A new
backend is one class plus one line in :data:`BACKENDS`.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError

#: backend name -> "module:Class" (imported on first use)
BACKENDS: dict[str, str] = {
    "transformers": "rankkit.generators.hf:TransformersBackend",
    "vllm": "rankkit.generators.vllm:VLLMBackend",
    "openai": "rankkit.generators.openai_compat:OpenAIBackend",
}

Messages = list[dict[str, str]]


@dataclass
class Generation:
    """One completion: its text, how many tokens were generated, or why it failed."""

    text: str
    n_tokens: int = 0
    error: str | None = None


class Backend:
    """What a generator needs from an LLM runtime. Subclasses fill in every method."""

    name = "backend"
    #: the model as the user named it (for ``describe``)
    model_name: str = ""

    def load(self) -> None:
        """Load the model now (backends that load lazily override this)."""

    def render(self, messages: Messages) -> str:
        """The prompt text the model sees for ``messages`` (chat template applied)."""
        raise NotImplementedError

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        raise NotImplementedError

    def truncate(self, text: str, n_tokens: int) -> str:
        """``text`` cut to its first ``n_tokens`` tokens."""
        raise NotImplementedError

    def context_window(self) -> int | None:
        """Most tokens the model reads at once, or None when unknown."""
        return None

    def generate(self, prompts: Sequence[str], messages: Sequence[Messages], max_new_tokens: int,
                 batch_size: int, progress: bool = False, **kwargs: Any) -> list[Generation]:
        """Complete every prompt (``messages`` are the same prompts before rendering)."""
        raise NotImplementedError

    def score_labels(self, prompts: Sequence[str], labels: Sequence[str], batch_size: int,
                     progress: bool = False) -> tuple[np.ndarray, list[str | None]]:
        """Sum of log-probs of each label's tokens after each prompt: ``([N, L] scores, errors)``.

        A prompt that could not be scored has a NaN row and its error message.
        """
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model_name}


def make_backend(backend: str | Backend, model: Any, **options: Any) -> Backend:
    """Instantiate a backend by name (or pass an instance through)."""
    if isinstance(backend, Backend):
        if options:
            raise ConfigError(f"options {sorted(options)} given with a ready backend instance")
        return backend
    if backend not in BACKENDS:
        raise ConfigError(f"unknown generator backend {backend!r} (available: {', '.join(BACKENDS)})")
    module, cls = BACKENDS[backend].split(":")
    return getattr(importlib.import_module(module), cls)(model, **options)


def approx_tokens(text: str) -> int:
    """Token estimate for backends without a local tokenizer (about 4 characters per token)."""
    return math.ceil(len(text) / 4)
