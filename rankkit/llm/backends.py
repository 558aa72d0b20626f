"""One interface over the ways to run an LLM: transformers, vLLM, an HTTP endpoint.

Consumers (the :class:`~rankkit.generators.generator.Generator` stage, LLM
rerankers) build prompts and read results; a backend only renders chat
messages, tokenises, generates, scores label continuations and gives next-token
log-probs, each over a whole list of prompts at once. A new backend is one
class plus one line in :data:`BACKENDS`.
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
    "transformers": "rankkit.llm.transformers_backend:TransformersBackend",
    "vllm": "rankkit.llm.vllm:VLLMBackend",
    "openai": "rankkit.llm.openai_compat:OpenAIBackend",
}

Messages = list[dict[str, str]]


@dataclass
class Generation:
    """One completion: its text, how many tokens were generated, or why it failed."""

    text: str
    n_tokens: int = 0
    error: str | None = None


class Backend:
    """What LLM consumers need from a runtime.

    Subclasses implement ``render``, ``count_tokens``, ``truncate``, ``generate``
    and ``score_labels``; ``token_ids`` and ``next_token_logprobs`` (list-level
    rerankers) raise a :class:`ConfigError` naming the backends that have them
    unless overridden.
    """

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

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, without special tokens.

        E.g. to check that a reranker's identifiers are single tokens. BPE
        tokenisers spell a word differently after a space (``"A"`` vs ``" A"``):
        ask for the text exactly as it follows the prompt.
        """
        raise ConfigError(f"the {self.name!r} backend has no local tokenizer to give token ids "
                          f"(backends that do: {', '.join(NEXT_TOKEN_BACKENDS)})")

    def next_token_logprobs(self, prompts: Sequence[str], candidate_ids: Sequence[int],
                            batch_size: int, shared_prefix: str | None = None,
                            progress: bool = False) -> np.ndarray:
        """Log-softmax over the whole vocabulary at the position after each prompt,
        read at ``candidate_ids``: an ``[N, C]`` float array.

        ``shared_prefix`` is text every prompt starts with (system text and
        instructions); backends may compute it once and reuse it. With a prefix,
        the prompt is tokenised as ``tokens(prefix) + tokens(rest)``, which can
        differ from tokenising the whole prompt where a token would straddle the
        boundary: end the prefix at a natural break (a newline, a special token).
        """
        raise ConfigError(f"the {self.name!r} backend cannot give next-token log-probs of chosen "
                          f"tokens (backends that can: {', '.join(NEXT_TOKEN_BACKENDS)})")

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model_name}


#: backends that implement ``token_ids`` and ``next_token_logprobs``
NEXT_TOKEN_BACKENDS = ("transformers", "vllm")


def check_candidates(candidate_ids: Sequence[int], vocab_size: int | None = None) -> list[int]:
    """Candidate token ids as plain ints; a clear error for none, non-integers or out-of-vocab ids."""
    if isinstance(candidate_ids, (str, bytes)) or len(candidate_ids) == 0:
        raise ConfigError(f"candidate_ids must be a non-empty list of token ids, got {candidate_ids!r}")
    out = []
    for c in candidate_ids:
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)):
            raise ConfigError(f"candidate token ids must be integers, got {c!r}")
        if c < 0 or (vocab_size is not None and c >= vocab_size):
            raise ConfigError(f"candidate token id {int(c)} is outside the vocabulary "
                              f"(0..{vocab_size - 1 if vocab_size else '?'})")
        out.append(int(c))
    return out


def split_prefix(prompts: Sequence[str], shared_prefix: str) -> list[str]:
    """What follows ``shared_prefix`` in each prompt; a clear error for a prompt that does not start with it."""
    for i, p in enumerate(prompts):
        if not p.startswith(shared_prefix):
            at = next((j for j, (a, b) in enumerate(zip(p, shared_prefix)) if a != b),
                      min(len(p), len(shared_prefix)))
            raise ConfigError(f"prompt {i} does not start with shared_prefix (they differ at character "
                              f"{at}: prompt has {p[at:at + 20]!r}, prefix has "
                              f"{shared_prefix[at:at + 20]!r})")
    return [p[len(shared_prefix):] for p in prompts]


def make_backend(backend: str | Backend, model: Any, **options: Any) -> Backend:
    """Instantiate a backend by name (or pass an instance through)."""
    if isinstance(backend, Backend):
        if options:
            raise ConfigError(f"options {sorted(options)} given with a ready backend instance")
        return backend
    if backend not in BACKENDS:
        raise ConfigError(f"unknown LLM backend {backend!r} (available: {', '.join(BACKENDS)})")
    module, cls = BACKENDS[backend].split(":")
    return getattr(importlib.import_module(module), cls)(model, **options)


def approx_tokens(text: str) -> int:
    """Token estimate for backends without a local tokenizer (about 4 characters per token)."""
    return math.ceil(len(text) / 4)
