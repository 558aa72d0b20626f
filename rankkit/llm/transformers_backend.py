"""The transformers backend: a local HF causal LM (GGUF or safetensors) in this process.

Batched greedy ``generate``, label log-likelihoods reusing the prompt's KV
cache, and next-token log-probs over a shared prefix computed once
(:mod:`rankkit.llm.next_token`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError
from .backends import Backend, Generation, Messages, check_candidates, split_prefix


class TransformersBackend(Backend):
    """Local HF causal LM (GGUF or safetensors): batched ``generate`` and label log-likelihoods.

    ``model`` is a name for :func:`rankkit.llm.loading.load_causal_lm` (loaded on first
    use, shared through its cache) or an already-loaded model, with ``tokenizer``.
    """

    name = "transformers"

    def __init__(self, model: Any = "smollm2", tokenizer: Any = None, dtype: Any = "auto",
                 device: str | None = None):
        if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
            from ..dtypes import dtype_name
            from ..models import resolve_model

            resolve_model(model)  # a missing model fails here, before any heavy import
            self.model_name, self._dtype, self._device = str(model), dtype_name(dtype), device
            self._model = self._tok = None
        else:
            if tokenizer is None:
                raise ConfigError("pass tokenizer= together with a loaded model")
            from .loading import prepare_tokenizer

            self._model, self._tok = model, prepare_tokenizer(tokenizer, model)
            self.model_name = getattr(model.config, "name_or_path", type(model).__name__)

    def load(self) -> None:
        self._load()

    def _load(self) -> tuple[Any, Any]:
        if self._model is None:
            from .loading import load_causal_lm

            self._model, self._tok = load_causal_lm(self.model_name, self._dtype, self._device)
        return self._model, self._tok

    @property
    def model(self) -> Any:
        return self._load()[0]

    @property
    def tokenizer(self) -> Any:
        return self._load()[1]

    # -------------------------------------------------------------- text side
    def render(self, messages: Messages) -> str:
        from .loading import chat_prompt

        return chat_prompt(self.tokenizer, messages)

    def _special(self) -> bool:
        # a chat template already writes the special tokens; plain prompts need them added
        return not getattr(self.tokenizer, "chat_template", None)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        ids = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [len(x) for x in ids]

    def truncate(self, text: str, n_tokens: int) -> str:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"][:max(0, n_tokens)]
        return self.tokenizer.decode(ids)

    def context_window(self) -> int | None:
        cfg = self.model.config
        window = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        if tok_max and tok_max < 1_000_000:
            window = min(window, tok_max) if window else tok_max
        return window

    def encode(self, prompts: Sequence[str]) -> list[list[int]]:
        if not prompts:
            return []
        return self.tokenizer(list(prompts), add_special_tokens=self._special())["input_ids"]

    def _batches(self, ids: list[list[int]], batch_size: int, progress: bool, desc: str):
        """Length-sorted batches (longest first) as ``(rows, input_ids, attention_mask)``."""
        from .next_token import left_padded_batches

        return left_padded_batches(ids, batch_size, self.tokenizer.pad_token_id, self.model.device,
                                   progress, desc)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        if not texts:
            return []
        return [list(x) for x in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    # -------------------------------------------------------------- generation
    def generate(self, prompts: Sequence[str], messages: Sequence[Messages], max_new_tokens: int,
                 batch_size: int, progress: bool = False, **kwargs: Any) -> list[Generation]:
        import torch

        model, tok = self._load()
        ids = self.encode(prompts)
        out: list[Generation | None] = [None] * len(ids)
        settings = {"do_sample": False, "max_new_tokens": max_new_tokens,
                    "pad_token_id": tok.pad_token_id, **kwargs}
        if not settings["do_sample"]:
            # greedy: silence sampling defaults a generation config may carry
            settings.update(temperature=None, top_p=None, top_k=None)
        stop = eos_ids(model, tok)
        with torch.inference_mode():
            for rows, input_ids, mask in self._batches(ids, batch_size, progress, "generate"):
                gen = model.generate(input_ids=input_ids, attention_mask=mask, **settings)
                new = gen[:, input_ids.shape[1]:].cpu()
                lengths = generated_lengths(new, stop)
                texts = tok.batch_decode([row[:n] for row, n in zip(new, lengths)],
                                         skip_special_tokens=True)
                for i, text, n in zip(rows, texts, lengths):
                    out[i] = Generation(text=text, n_tokens=int(n))
        return [g for g in out if g is not None]

    # ---------------------------------------------------------- label scoring
    def score_labels(self, prompts: Sequence[str], labels: Sequence[str], batch_size: int,
                     progress: bool = False) -> tuple[np.ndarray, list[str | None]]:
        """Sum of label-token log-probs: one forward pass over the prompts of a batch,
        then one short pass over every label continuation reusing their KV cache."""
        import torch

        from .next_token import cache_kwarg, logits_to_keep_arg, output_cache

        model, tok = self._load()
        label_ids = [tok(lab, add_special_tokens=False)["input_ids"] for lab in labels]
        for lab, li in zip(labels, label_ids):
            if not li:
                raise ConfigError(f"label {lab!r} encodes to no tokens")
        n_lab, longest = len(labels), max(len(li) for li in label_ids)
        first = torch.tensor([li[0] for li in label_ids])
        pad = tok.pad_token_id
        # continuation inputs (label[:-1]) and targets (label[1:]), right-padded: [L, M]
        m = longest - 1
        cont_in = torch.full((n_lab, max(m, 1)), pad, dtype=torch.long)
        cont_tgt = torch.zeros((n_lab, max(m, 1)), dtype=torch.long)
        cont_mask = torch.zeros((n_lab, max(m, 1)), dtype=torch.long)
        for j, li in enumerate(label_ids):
            k = len(li) - 1
            if k:
                cont_in[j, :k] = torch.tensor(li[:-1])
                cont_tgt[j, :k] = torch.tensor(li[1:])
                cont_mask[j, :k] = 1
        ids = self.encode(prompts)
        scores = np.full((len(ids), n_lab), np.nan)
        keep = logits_to_keep_arg(model)
        with torch.inference_mode():
            for rows, input_ids, mask in self._batches(ids, batch_size, progress, "classify"):
                b = len(rows)
                pos = (mask.cumsum(-1) - 1).clamp(min=0)
                out = model(input_ids=input_ids, attention_mask=mask, position_ids=pos,
                            use_cache=m > 0, **({keep: 1} if keep else {}))
                last = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
                total = last[:, first.to(last.device)]                       # [B, L]
                if m > 0:
                    cache = output_cache(out)
                    cache.batch_repeat_interleave(n_lab)                     # rows b*L + j
                    dev = input_ids.device
                    attn = torch.cat([mask.repeat_interleave(n_lab, 0),
                                      cont_mask.to(dev).repeat(b, 1)], dim=1)
                    start = mask.sum(-1).repeat_interleave(n_lab)[:, None]
                    cpos = start + torch.arange(cont_in.shape[1], device=dev)[None, :]
                    out2 = model(input_ids=cont_in.to(dev).repeat(b, 1), attention_mask=attn,
                                 position_ids=cpos, use_cache=False,
                                 **{cache_kwarg(model): cache})
                    logp = torch.log_softmax(out2.logits.float(), dim=-1)
                    tgt = cont_tgt.to(dev).repeat(b, 1)
                    picked = logp.gather(-1, tgt[..., None]).squeeze(-1) * cont_mask.to(dev).repeat(b, 1)
                    total = total + picked.sum(-1).view(b, n_lab)
                scores[rows] = total.cpu().numpy()
        return scores, [None] * len(ids)

    # ------------------------------------------------------ next-token log-probs
    def next_token_logprobs(self, prompts: Sequence[str], candidate_ids: Sequence[int],
                            batch_size: int, shared_prefix: str | None = None,
                            progress: bool = False) -> np.ndarray:
        """``[N, C]`` log-softmax over the vocabulary after each prompt, at ``candidate_ids``.

        Batched, last position only. With ``shared_prefix`` its KV cache is
        computed once per call and reused by every batch; each prompt is then
        tokenised as ``tokens(prefix) + tokens(rest)`` (see
        :meth:`Backend.next_token_logprobs`).
        """
        from .next_token import last_token_logprobs, prefixed_logprobs

        model, tok = self._load()
        cands = check_candidates(candidate_ids, _vocab_size(model))
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size!r}")
        if not prompts:
            return np.zeros((0, len(cands)), dtype=np.float32)
        pad = tok.pad_token_id
        if not shared_prefix:
            ids = self.encode(prompts)
            empty = [i for i, x in enumerate(ids) if not x]
            if empty:
                raise ConfigError(f"prompt {empty[0]} encodes to no tokens")
            return last_token_logprobs(model, ids, cands, batch_size, pad, progress)
        rests = split_prefix(prompts, shared_prefix)
        prefix_ids = tok(shared_prefix, add_special_tokens=self._special())["input_ids"]
        if not prefix_ids:
            return self.next_token_logprobs(prompts, cands, batch_size, None, progress)
        rest_ids = tok(rests, add_special_tokens=False)["input_ids"]
        return prefixed_logprobs(model, prefix_ids, rest_ids, cands, batch_size, pad, progress)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model_name}


def eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """Token ids that end a generation (the generation config's eos, else the tokenizer's)."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    return set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}


def generated_lengths(new_tokens: Any, stop: set[int]) -> list[int]:
    """Tokens generated per row: up to and including the first stop token (padding excluded)."""
    out = []
    for row in new_tokens.tolist():
        n = len(row)
        for j, t in enumerate(row):
            if t in stop:
                n = j + 1
                break
        out.append(n)
    return out


def _vocab_size(model: Any) -> int | None:
    """Rows of the output layer (can exceed the tokenizer's length), else the config's vocab size."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    weight = getattr(head, "weight", None)
    if weight is not None:
        return int(weight.shape[0])
    return getattr(getattr(model, "config", None), "vocab_size", None)
