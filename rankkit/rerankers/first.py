"""FIRST: listwise LLM reranking from the logits of the first generated identifier.

Reddy et al., 2024 ("FIRST: Faster Improved Listwise Reranking with Single
Token Decoding"): a window of passages labelled ``[A]``, ``[B]``, ... goes
into a RankGPT-style prompt whose answer is prefilled with ``[``; one forward
pass gives the next-token log-probs, and the window is ranked by those
log-probs restricted to its identifiers. Windows slide from the bottom of
each candidate list to the top (``window``, ``stride``), so a relevant
passage can climb into the top window. Per sliding step, the windows of all
queries go to the backend in one call, which sorts them by length (little
padding), computes logits for the last position only and reuses the
key/value cache of the shared prompt head (system text + instructions).

``mode="generate"`` generates the whole permutation instead and parses it
(missing, duplicate and unknown identifiers repaired and counted): the
baseline FIRST is measured against.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, RankkitError
from ..types import Corpus
from .base import ListReranker
from .cross_encoder import _text_source
from .first_prompt import LETTERS, PREFILL, parse_order, render_window

log = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2"
#: manifest kind of an adapter folder written by ``rankkit train first``
KIND_LLM_ADAPTER = "llm-adapter"
MODES = ("logits", "generate")


def window_starts(n: int, window: int, stride: int) -> list[tuple[int, int]]:
    """(start, end) of each window, bottom first; the last one always starts at 0."""
    spans = []
    end = n
    while True:
        start = max(0, end - window)
        spans.append((start, end))
        if start == 0:
            return spans
        end -= stride


def _manifest(model: Any) -> dict[str, Any] | None:
    """The rankkit manifest of a model folder (None for a model name or a folder without one)."""
    from ..folders import read_manifest

    if not isinstance(model, (str, os.PathLike)):
        return None
    path = Path(os.fspath(model))
    return read_manifest(path) if path.is_dir() else None


def load_first_model(model: str | os.PathLike, dtype: Any = "auto", device: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) for a model name, or for an adapter folder from ``rankkit train first``."""
    from ..llm.loading import load_causal_lm

    path = Path(os.fspath(model))
    manifest = _manifest(model)
    if manifest is None or manifest.get("kind") != KIND_LLM_ADAPTER:
        return load_causal_lm(model, dtype, device)
    import peft
    from transformers import AutoTokenizer

    from ..llm.loading import prepare_tokenizer

    base, _ = load_causal_lm(manifest["base_model"], dtype, device, cache=False)
    net = peft.PeftModel.from_pretrained(base, str(path)).merge_and_unload()
    net.eval()
    return net, prepare_tokenizer(AutoTokenizer.from_pretrained(path), net)


class FirstReranker(ListReranker):
    """Listwise LLM reranker (FIRST): ``bm25 % 20 >> rk.FirstReranker("smollm2", corpus=c)``.

    ``model``: a model name for ``load_causal_lm`` ("smollm2", a folder, a
    .gguf file), an adapter folder from ``rankkit train first``, or ignored when
    ``backend=`` is a ready :class:`rankkit.llm.Backend`. ``window`` passages
    (at most 26, identifiers A..Z) per prompt, windows ``stride`` apart.
    Passages are cut to ``max_passage_tokens`` (fewer if a window would not
    fit the context); both are counted in ``stats``. For an adapter folder,
    ``max_passage_tokens`` and ``template`` default to what it was trained
    with (its manifest), else 128 and "chat". ``shared_prefix=False``
    turns the prefix KV cache off (same scores, for measuring it).
    ``template="plain"`` allows models without a chat template.
    """

    name = "first"
    returns = "order"

    def __init__(self, model: str | os.PathLike = DEFAULT_MODEL, corpus: Any = None, window: int = 20,
                 stride: int = 10, mode: str = "logits", max_passage_tokens: int | None = None,
                 batch_size: int = 4, backend: Any = None, shared_prefix: bool = True,
                 template: str | None = None, dtype: Any = "auto", device: str | None = None,
                 show_progress: bool = False, interpolate: float | str | None = None):
        # an adapter reranks as it was trained: its manifest's passage length and template are the defaults
        trained = (_manifest(model) or {}).get("reranker", {}) if backend is None else {}
        max_passage_tokens = int(max_passage_tokens if max_passage_tokens is not None
                                 else trained.get("max_passage_tokens", 128))
        template = template if template is not None else trained.get("template", "chat")
        if not isinstance(window, int) or not 2 <= window <= len(LETTERS):
            raise ConfigError(f"window must be an integer in 2..{len(LETTERS)}, got {window!r}")
        if not isinstance(stride, int) or not 1 <= stride <= window:
            raise ConfigError(f"stride must be an integer in 1..window ({window}), got {stride!r}")
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
        if template not in ("chat", "plain"):
            raise ConfigError(f"template must be 'chat' or 'plain', got {template!r}")
        if max_passage_tokens < 8 or batch_size < 1:
            raise ConfigError("max_passage_tokens must be >= 8 and batch_size >= 1")
        self.model_name = str(model)
        self.corpus = _text_source(corpus)
        self.window, self.stride, self.mode = window, stride, mode
        self.max_passage_tokens, self.batch_size = int(max_passage_tokens), int(batch_size)
        self.use_prefix, self.template, self.show_progress = bool(shared_prefix), template, show_progress
        self.interpolate = self.resolve_interpolation(interpolate)
        self.backend = backend if backend is not None else self._backend(model, dtype, device)
        self._check_template()
        self.ids = LETTERS[:window]
        self.id_tokens = check_identifiers(self.backend.token_ids, self.ids)
        self.stats = {"windows": 0, "forward_calls": 0, "generate_calls": 0, "passages_truncated": 0,
                      "passages_shortened_for_context": 0, "prompt_tokens": 0, "missing_ids": 0,
                      "duplicate_ids": 0, "unknown_ids": 0, "window_seconds": 0.0}

    @staticmethod
    def _backend(model: Any, dtype: Any, device: str | None) -> Any:
        from ..llm.transformers_backend import TransformersBackend

        net, tok = load_first_model(model, dtype, device)
        return TransformersBackend(net, tokenizer=tok)

    def _check_template(self) -> None:
        tok = getattr(self.backend, "tokenizer", None)
        if self.template == "chat" and tok is not None and not getattr(tok, "chat_template", None):
            raise ConfigError(f"model {self.model_name!r} has no chat template; FIRST prompts are chat "
                              "prompts (a wrong template costs accuracy): use an instruction-tuned model, "
                              "or pass template='plain' to accept a plain 'User:/Assistant:' rendering")

    def render(self, messages: list[dict[str, str]]) -> str:
        if self.template == "plain":
            from ..llm.loading import render_plain

            return render_plain(messages)
        return self.backend.render(messages)

    # ------------------------------------------------------------------ list-level contract
    def rank_lists(self, query_texts: list[str], candidates: list[np.ndarray],
                   first_scores: list[np.ndarray]) -> list[np.ndarray]:
        texts = [self._passages(c) for c in candidates]
        orders = [np.arange(len(c)) for c in candidates]
        plans = [window_starts(len(c), self.window, self.stride) if len(c) > 1 else [] for c in candidates]
        for step in range(max((len(p) for p in plans), default=0)):
            jobs = [(q, *plans[q][step]) for q in range(len(plans)) if step < len(plans[q])]
            prompts = [self.window_prompt(query_texts[q], [texts[q][k] for k in orders[q][s:e]])
                       for q, s, e in jobs]
            for (q, s, e), local in zip(jobs, self.rank_windows(prompts)):
                orders[q][s:e] = orders[q][s:e][local]
        return orders

    def rank_windows(self, prompts: Sequence[Any]) -> list[np.ndarray]:
        """Per window prompt, the order of its passages (best first)."""
        if not prompts:
            return []
        t0 = time.perf_counter()
        self.stats["windows"] += len(prompts)
        if self.mode == "generate":
            out = self._generate(prompts)
        else:
            out = [np.argsort(-row[:n], kind="stable")
                   for row, n in zip(self.window_logprobs(prompts), (p.size for p in prompts))]
        self.stats["window_seconds"] += time.perf_counter() - t0
        return out

    def window_logprobs(self, prompts: Sequence[Any]) -> np.ndarray:
        """``[N, window]`` next-token log-probs of the identifiers after each prompt (one forward pass each)."""
        prefix = prompts[0].prefix if self.use_prefix else None
        if prefix is not None and any(p.prefix != prefix for p in prompts):
            groups: dict[str, list[int]] = {}
            for i, p in enumerate(prompts):
                groups.setdefault(p.prefix, []).append(i)
            out = np.zeros((len(prompts), len(self.id_tokens)), dtype=np.float32)
            for rows in groups.values():
                out[rows] = self.window_logprobs([prompts[i] for i in rows])
            return out
        self.stats["forward_calls"] += 1
        return self.backend.next_token_logprobs([p.text for p in prompts], self.id_tokens, self.batch_size,
                                                shared_prefix=prefix, progress=self.show_progress)

    def _generate(self, prompts: Sequence[Any]) -> list[np.ndarray]:
        self.stats["generate_calls"] += 1
        gens = self.backend.generate([p.text for p in prompts], [p.messages for p in prompts],
                                     max_new_tokens=4 * self.window + 8, batch_size=self.batch_size,
                                     progress=self.show_progress)
        out = []
        for p, g in zip(prompts, gens):
            parsed = parse_order(g.text or "", self.ids[:p.size])
            self.stats["missing_ids"] += parsed.missing
            self.stats["duplicate_ids"] += parsed.duplicate
            self.stats["unknown_ids"] += parsed.unknown
            out.append(np.asarray(parsed.order, dtype=np.int64))
        return out

    # ------------------------------------------------------------------ prompts
    def window_prompt(self, query: str, passages: Sequence[str]) -> Any:
        """The rendered prompt of one window (an object with ``text``, ``prefix``, ``messages``, ``size``)."""
        budget = self._passage_budget(query, len(passages))
        cut = []
        for p in passages:
            if budget < self.max_passage_tokens and self._count(p) > budget:
                self.stats["passages_shortened_for_context"] += 1
            cut.append(self._truncate(p, budget))
        wp = render_window(self.render, query, cut, self.ids[:len(passages)])
        prompt = _Prompt(wp.text, wp.prefix, wp.messages, len(passages))
        self.stats["prompt_tokens"] += self._count(prompt.text)
        return prompt

    def _passage_budget(self, query: str, n: int) -> int:
        """Tokens per passage so the window fits the context (at most ``max_passage_tokens``)."""
        ctx = self.backend.context_window()
        if not ctx:
            return self.max_passage_tokens
        empty = render_window(self.render, query, [""] * n, self.ids[:n]).text
        room = ctx - self._count(empty) - 4 * self.window - 16   # the answer (generate mode) needs room too
        per = room // max(n, 1)
        if per < 8:
            raise RankkitError(f"a window of {n} passages does not fit the model's {ctx}-token context "
                               f"(query and instructions alone take {self._count(empty)}): lower window")
        return min(self.max_passage_tokens, per)

    def _passages(self, docids: np.ndarray) -> list[str]:
        if self.corpus is None:
            raise ConfigError("FirstReranker needs the passage texts: pass corpus= (a Corpus, a "
                              "{docid: text} mapping or a function docid -> text)")
        get = self.corpus.__getitem__ if isinstance(self.corpus, Corpus) else self.corpus
        try:
            return [get(d) for d in docids.tolist()]
        except KeyError as e:
            raise RankkitError(f"FirstReranker: candidate {e} is not in the corpus it was given") from None

    def _count(self, text: str) -> int:
        return self.backend.count_tokens([text])[0]

    def _truncate(self, text: str, budget: int) -> str:
        if self._count(text) <= budget:
            return text
        self.stats["passages_truncated"] += 1
        return self.backend.truncate(text, budget)

    def params(self) -> dict[str, Any]:
        p: dict[str, Any] = {"model": self.model_name, "mode": self.mode, "window": self.window,
                             "stride": self.stride, "max_passage_tokens": self.max_passage_tokens}
        if self.interpolate is not None:
            p["interpolate"] = self.interpolate
        return p


class _Prompt:
    """A window prompt plus its number of passages."""

    __slots__ = ("text", "prefix", "messages", "size")

    def __init__(self, text: str, prefix: str, messages: list[dict[str, str]], size: int):
        self.text, self.prefix, self.messages, self.size = text, prefix, messages, size


def check_identifiers(token_ids: Callable[[list[str]], list[list[int]]], ids: Sequence[str]) -> list[int]:
    """Token id of each identifier as it follows ``[``; a ConfigError if any is not exactly one token.

    ``token_ids`` tokenises texts without special tokens (``Backend.token_ids``).
    """
    bracket = token_ids([PREFILL])[0]
    close = token_ids(["]"])[0]
    out = []
    for s in ids:
        got = token_ids([f"{PREFILL}{s}]"])[0]
        mid = got[len(bracket):len(got) - len(close)] if got[:len(bracket)] == bracket and \
            got[len(got) - len(close):] == close else None
        if mid is None or len(mid) != 1:
            raise ConfigError(f"identifier {s!r} is not a single token after '[' for this tokenizer "
                              f"(tokens of '[{s}]': {got}); FIRST reads one token per identifier")
        out.append(int(mid[0]))
    if len(set(out)) != len(out):
        raise ConfigError("two identifiers map to the same token for this tokenizer")
    return out


__all__ = ["FirstReranker", "check_identifiers", "load_first_model", "window_starts", "KIND_LLM_ADAPTER",
           "DEFAULT_MODEL"]
