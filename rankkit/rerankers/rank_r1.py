"""Rank-R1: a setwise LLM reranker that reasons in ``<think>`` before naming the best candidate.

Zhuang et al., 2025 ("Rank-R1: Enhancing Reasoning in LLM-based Document
Rerankers via Reinforcement Learning"). Each comparison shows the model the
query and a set of ``set_size`` candidates; it reasons, then answers with one
label; a setwise heapsort or bubble sort (:mod:`rankkit.rerankers.setwise`)
turns the choices into a ranking of the top ``top_k`` (the rest keep their
first-stage order). The sorts of all queries advance in lock-step, so every
round's pending comparisons (one per unfinished query) go to the backend in one
batched, left-padded ``generate`` call.

An output that cannot be parsed (no answer tag, a label outside the set,
several labels, reasoning cut by ``max_new_tokens``) is counted in
``stats["parse"]`` and that comparison keeps the first-stage order (the
candidate ranked highest by the first stage wins), as the reference does.
The reasoning of every comparison is kept in ``last_reasoning`` and in the
returned run's ``extras["reasoning"]``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, RankkitError
from ..types import Corpus, Queries, Run
from .base import ListReranker
from .cross_encoder import _text_source
from .rank_r1_prompt import PROMPTS, STATUSES, parse, render
from .setwise import SORTS, drive, make_sort

DEFAULT_MODEL = "smollm2"
#: manifest kind of an adapter folder written by ``rankkit train rank-r1``
KIND_RANK_R1 = "rank-r1-adapter"


def load_rank_r1_model(model: str | os.PathLike = DEFAULT_MODEL, adapter: str | os.PathLike | None = None,
                       dtype: Any = "auto", device: str | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, manifest) for a model name or a Rank-R1 adapter folder (LoRA merged in).

    ``model`` may itself be an adapter folder (its manifest names the base);
    the LoRA is merged into a deep copy of the cached base (a GGUF reload takes minutes).
    """
    from ..folders import read_manifest
    from ..llm.loading import load_causal_lm

    for cand in (adapter, model):
        if cand is not None and Path(os.fspath(cand)).is_dir():
            man = read_manifest(Path(os.fspath(cand)))
            if man is not None and man.get("kind") == KIND_RANK_R1:
                adapter, model = cand, man["base_model"]
                break
    else:
        if adapter is not None:
            raise ConfigError(f"adapter {os.fspath(adapter)!r} is not a Rank-R1 adapter folder "
                              "(no rankkit.json of kind rank-r1-adapter)")
    if adapter is None:
        net, tok = load_causal_lm(model, dtype, device)
        return net, tok, {}
    import copy

    import peft

    shared, tok = load_causal_lm(model, dtype, device)
    base = copy.deepcopy(shared)          # merging must not touch the shared cached copy; a copy beats a reload
    net = peft.PeftModel.from_pretrained(base, os.fspath(adapter)).merge_and_unload()
    net.eval()
    return net, tok, read_manifest(Path(os.fspath(adapter))) or {}


class RankR1Reranker(ListReranker):
    """Setwise reasoning reranker: ``bm25 % 20 >> rk.RankR1Reranker("smollm2", corpus=c, set_size=4)``.

    ``model``: a model name for ``load_causal_lm`` or a Rank-R1 adapter folder;
    ``adapter``: an adapter folder from ``rankkit train rank-r1`` on top of it.
    ``sort``: "heap" (default) or "bubble"; ``top_k`` places are sorted.
    ``prefill``: start the answer with ``<think>`` (what training uses); ``prompt``: "rank-r1"
    (the paper's wording) or "compact" (shorter, for CPU budgets; train and test with the same).
    """

    name = "rank-r1"
    returns = "order"

    def __init__(self, model: str | os.PathLike = DEFAULT_MODEL, corpus: Any = None, set_size: int = 4,
                 top_k: int = 10, max_new_tokens: int = 96, sort: str = "heap",
                 adapter: str | os.PathLike | None = None, max_passage_tokens: int = 96,
                 prefill: bool = True, prompt: str = "rank-r1", batch_size: int = 16, backend: Any = None, dtype: Any = "auto",
                 device: str | None = None, show_progress: bool = False,
                 interpolate: float | str | None = None):
        if not isinstance(set_size, int) or not 2 <= set_size <= 20:
            raise ConfigError(f"set_size must be an integer in 2..20, got {set_size!r}")
        if sort not in SORTS:
            raise ConfigError(f"sort must be one of {SORTS}, got {sort!r}")
        if prompt not in PROMPTS:
            raise ConfigError(f"prompt must be one of {PROMPTS}, got {prompt!r}")
        if top_k < 1 or max_new_tokens < 1 or max_passage_tokens < 8 or batch_size < 1:
            raise ConfigError("need top_k >= 1, max_new_tokens >= 1, max_passage_tokens >= 8, batch_size >= 1")
        self.model_name = str(model)
        self.adapter = None if adapter is None else str(adapter)
        self.corpus = _text_source(corpus)
        self.set_size, self.top_k, self.sort = set_size, int(top_k), sort
        self.max_new_tokens, self.max_passage_tokens = int(max_new_tokens), int(max_passage_tokens)
        self.prompt = prompt
        self.prefill, self.batch_size, self.show_progress = bool(prefill), int(batch_size), show_progress
        self.interpolate = self.resolve_interpolation(interpolate)
        self.manifest: dict[str, Any] = {}
        if backend is None:
            from ..llm.transformers_backend import TransformersBackend

            net, tok, self.manifest = load_rank_r1_model(model, adapter, dtype, device)
            backend = TransformersBackend(net, tokenizer=tok)
        self.backend = backend
        self.last_reasoning: dict[str, list[dict[str, Any]]] = {}
        self.stats: dict[str, Any] = {"comparisons": 0, "generate_calls": 0, "generated_tokens": 0,
                                      "generate_seconds": 0.0, "passages_truncated": 0,
                                      "parse": dict.fromkeys(STATUSES, 0)}

    # ------------------------------------------------------------------ the stage
    def transform(self, queries: Queries, run: Run | None) -> Run:
        out = super().transform(queries, run)
        out.extras["reasoning"] = dict(self.last_reasoning)
        return out

    def _rerank(self, texts: list[str], qids: list[str], head: Run) -> list[np.ndarray]:
        self._todo_qids = [q for q in qids if len(head.docids(q))]
        self.last_reasoning = {}
        return super()._rerank(texts, qids, head)

    def rank_lists(self, query_texts: list[str], candidates: list[np.ndarray],
                   first_scores: list[np.ndarray]) -> list[np.ndarray]:
        passages = [self._passages(c) for c in candidates]
        sorts = [make_sort(self.sort, len(c), self.set_size, self.top_k) for c in candidates]
        logs: list[list[dict[str, Any]]] = [[] for _ in candidates]

        def choose(jobs: list[tuple[int, tuple[int, ...]]]) -> list[int]:
            prompts = [render(self.backend.render, query_texts[q], [passages[q][i] for i in cands], self.prefill,
                              self.prompt)
                       for q, cands in jobs]
            winners = []
            for (q, cands), (choice, rec) in zip(jobs, self.compare(prompts, [len(c) for _, c in jobs])):
                rec["candidates"] = [str(candidates[q][i]) for i in cands]
                rec["winner"] = rec["candidates"][choice]
                logs[q].append(rec)
                winners.append(choice)
            return winners

        orders = drive(sorts, choose)
        qids = getattr(self, "_todo_qids", None)
        if qids is not None and len(qids) == len(candidates):
            self.last_reasoning = dict(zip(qids, logs))
        else:
            self.last_reasoning = {str(i): log for i, log in enumerate(logs)}
        return [np.asarray(o, dtype=np.int64) for o in orders]

    def compare(self, prompts: list[str], sizes: list[int]) -> list[tuple[int, dict[str, Any]]]:
        """One batched generate over comparison prompts: per prompt the winner's position and a record.

        An unparseable output keeps the first-stage order (position 0 wins).
        """
        t0 = time.perf_counter()
        gens = self.backend.generate(prompts, [[] for _ in prompts], max_new_tokens=self.max_new_tokens,
                                     batch_size=self.batch_size, progress=self.show_progress)
        self.stats["generate_calls"] += 1
        self.stats["comparisons"] += len(prompts)
        self.stats["generate_seconds"] += time.perf_counter() - t0
        out = []
        for g, n in zip(gens, sizes):
            self.stats["generated_tokens"] += int(g.n_tokens or 0)
            finished = g.n_tokens is None or g.n_tokens < self.max_new_tokens
            p = parse(g.text or "", n, prefilled=self.prefill, finished=finished)
            self.stats["parse"][p.status] += 1
            out.append((p.choice if p.choice is not None else 0,
                        {"status": p.status, "reasoning": p.reasoning, "output": g.text or ""}))
        return out

    # ------------------------------------------------------------------ texts
    def _passages(self, docids: np.ndarray) -> list[str]:
        if self.corpus is None:
            raise ConfigError("RankR1Reranker needs the passage texts: pass corpus= (a Corpus, a "
                              "{docid: text} mapping or a function docid -> text)")
        get = self.corpus.__getitem__ if isinstance(self.corpus, Corpus) else self.corpus
        try:
            texts = [get(d) for d in docids.tolist()]
        except KeyError as e:
            raise RankkitError(f"RankR1Reranker: candidate {e} is not in the corpus it was given") from None
        counts = self.backend.count_tokens(texts)
        out = []
        for t, c in zip(texts, counts):
            if c > self.max_passage_tokens:
                self.stats["passages_truncated"] += 1
                t = self.backend.truncate(t, self.max_passage_tokens)
            out.append(" ".join(t.split()))
        return out

    def parse_success_rate(self) -> float:
        """Share of comparisons whose output parsed to a label in the set."""
        total = sum(self.stats["parse"].values())
        return self.stats["parse"]["ok"] / total if total else float("nan")

    def params(self) -> dict[str, Any]:
        p: dict[str, Any] = {"model": self.model_name, "set_size": self.set_size, "top_k": self.top_k,
                             "sort": self.sort, "max_new_tokens": self.max_new_tokens,
                             "max_passage_tokens": self.max_passage_tokens, "prefill": self.prefill,
                             "prompt": self.prompt}
        if self.adapter:
            p["adapter"] = self.adapter
        if self.interpolate is not None:
            p["interpolate"] = self.interpolate
        return p


__all__ = ["RankR1Reranker", "load_rank_r1_model", "KIND_RANK_R1", "DEFAULT_MODEL"]
