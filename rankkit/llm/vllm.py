"""vLLM as a generator backend (GPU): continuous batching for answers, prompt log-probs for labels.

Optional: ``pip install vllm`` on a CUDA machine. vLLM is imported only when
this backend is chosen, and its absence is a clear error, never a fallback.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError, MissingResourceError
from .backends import Backend, Generation, Messages, check_candidates, split_prefix


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as e:
        raise MissingResourceError(
            f"backend='vllm' needs the vllm package ({e}); it runs on CUDA GPUs: `pip install vllm` "
            "there, or use backend='transformers' (CPU/GPU) or backend='openai' (a vLLM server)"
        ) from None
    return vllm


class VLLMBackend(Backend):
    """An in-process ``vllm.LLM`` engine. ``engine_options`` go to ``vllm.LLM`` as they are."""

    name = "vllm"

    def __init__(self, model: Any = "smollm2", dtype: str = "auto", **engine_options: Any):
        self._vllm = _import_vllm()
        if not isinstance(model, str):
            raise ConfigError("backend='vllm' takes a model name, folder or GGUF file, not a loaded model")
        from ..models import resolve_model

        ref = resolve_model(model)
        self.model_name = model
        self._location = str(ref.path / ref.gguf_file) if ref.gguf_file and ref.path else ref.location
        self._options = {"dtype": dtype, **engine_options}
        self._llm: Any = None

    @property
    def llm(self) -> Any:
        if self._llm is None:
            self._llm = self._vllm.LLM(model=self._location, **self._options)
        return self._llm

    def load(self) -> None:
        _ = self.llm

    @property
    def tokenizer(self) -> Any:
        return self.llm.get_tokenizer()

    def render(self, messages: Messages) -> str:
        from .loading import chat_prompt

        return chat_prompt(self.tokenizer, messages)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(self.tokenizer.encode(t, add_special_tokens=False)) for t in texts]

    def truncate(self, text: str, n_tokens: int) -> str:
        ids = self.tokenizer.encode(text, add_special_tokens=False)[: max(0, n_tokens)]
        return self.tokenizer.decode(ids)

    def context_window(self) -> int | None:
        config = getattr(getattr(self.llm, "llm_engine", None), "model_config", None)
        window = getattr(config, "max_model_len", None)
        return int(window) if window else None

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        return [list(self.tokenizer.encode(t, add_special_tokens=False)) for t in texts]

    def _prompt_ids(self, prompt: str) -> list[int]:
        templated = bool(getattr(self.tokenizer, "chat_template", None))
        return self.tokenizer.encode(prompt, add_special_tokens=not templated)

    def generate(self, prompts: Sequence[str], messages: Sequence[Messages], max_new_tokens: int,
                 batch_size: int, progress: bool = False, **kwargs: Any) -> list[Generation]:
        params = self._vllm.SamplingParams(**{"temperature": 0.0, "max_tokens": max_new_tokens, **kwargs})
        inputs = [{"prompt_token_ids": self._prompt_ids(p)} for p in prompts]
        outs = self.llm.generate(inputs, params, use_tqdm=progress)
        return [Generation(text=o.outputs[0].text, n_tokens=len(o.outputs[0].token_ids)) for o in outs]

    def score_labels(self, prompts: Sequence[str], labels: Sequence[str], batch_size: int,
                     progress: bool = False) -> tuple[np.ndarray, list[str | None]]:
        """Prompt + label as one token sequence; vLLM's ``prompt_logprobs`` give each label token's."""
        label_ids = [self.tokenizer.encode(lab, add_special_tokens=False) for lab in labels]
        for lab, li in zip(labels, label_ids):
            if not li:
                raise ConfigError(f"label {lab!r} encodes to no tokens")
        prompt_ids = [self._prompt_ids(p) for p in prompts]
        inputs = [{"prompt_token_ids": p + li} for p in prompt_ids for li in label_ids]
        params = self._vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        outs = self.llm.generate(inputs, params, use_tqdm=progress)
        scores = np.empty(len(inputs))
        for r, (o, inp) in enumerate(zip(outs, inputs)):
            li = label_ids[r % len(labels)]
            ids = inp["prompt_token_ids"]
            start = len(ids) - len(li)
            scores[r] = sum(o.prompt_logprobs[t][ids[t]].logprob for t in range(start, len(ids)))
        return scores.reshape(len(prompts), len(labels)), [None] * len(prompts)

    def next_token_logprobs(self, prompts: Sequence[str], candidate_ids: Sequence[int],
                            batch_size: int, shared_prefix: str | None = None,
                            progress: bool = False) -> np.ndarray:
        """Each prompt followed by each candidate, read through ``prompt_logprobs``: exact
        full-vocabulary log-probs (sampled ``logprobs`` only cover the top k).

        C sequences per prompt; vLLM schedules them together. ``shared_prefix`` is
        checked and tokenised as for the transformers backend; reusing its KV is
        left to vLLM's prefix caching.
        """
        cands = check_candidates(candidate_ids)
        if not prompts:
            return np.zeros((0, len(cands)), dtype=np.float32)
        if shared_prefix:
            rests = split_prefix(prompts, shared_prefix)
            head = self._prompt_ids(shared_prefix)
            prompt_ids = [head + self.tokenizer.encode(r, add_special_tokens=False) for r in rests]
        else:
            prompt_ids = [self._prompt_ids(p) for p in prompts]
        inputs = [{"prompt_token_ids": p + [c]} for p in prompt_ids for c in cands]
        params = self._vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        outs = self.llm.generate(inputs, params, use_tqdm=progress)
        scores = np.empty(len(inputs), dtype=np.float32)
        for r, (o, inp) in enumerate(zip(outs, inputs)):
            ids = inp["prompt_token_ids"]
            scores[r] = o.prompt_logprobs[len(ids) - 1][ids[-1]].logprob
        return scores.reshape(len(prompts), len(cands))
