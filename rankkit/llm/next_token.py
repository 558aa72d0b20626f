"""Batched next-token log-probs on a local transformers model, with a shared prefix computed once.

List-level rerankers (FIRST) score a window of passages by the logits of
single-token identifiers right after a long prompt whose head (system text,
instructions) is the same for every query. The head's keys/values are computed
once per call; every batch starts from a copy of that cache expanded to the
batch, and its rows are laid out as::

    [prefix][left pads][suffix]      attention mask  1..1 0..0 1..1

with position ids continuing from the prefix length, so the last column is
every row's real last token and only its logits are computed
(``logits_to_keep=1`` where the model takes it).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np


def left_padded_batches(ids: Sequence[Sequence[int]], batch_size: int, pad_id: int, device: Any,
                        progress: bool = False, desc: str = "batches") -> Iterator[tuple[list[int], Any, Any]]:
    """Length-sorted batches (longest first) as ``(rows, input_ids, attention_mask)``, left-padded."""
    import torch
    from tqdm.auto import tqdm

    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    for start in tqdm(range(0, len(order), batch_size), desc=desc, disable=not progress,
                      unit="batch", leave=False):
        rows = order[start:start + batch_size]
        width = max(len(ids[i]) for i in rows)
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):
            n = len(ids[i])
            if n:
                input_ids[r, width - n:] = torch.tensor(list(ids[i]), dtype=torch.long)
                mask[r, width - n:] = 1
        yield rows, input_ids.to(device), mask.to(device)


def last_token_logprobs(model: Any, ids: Sequence[Sequence[int]], candidates: Sequence[int],
                        batch_size: int, pad_id: int, progress: bool = False) -> np.ndarray:
    """``[N, C]`` log-softmax after each full token sequence, at ``candidates`` (no shared prefix)."""
    import torch

    out = np.zeros((len(ids), len(candidates)), dtype=np.float32)
    keep = logits_to_keep_arg(model)
    cand = torch.tensor(list(candidates), dtype=torch.long)
    with torch.inference_mode():
        for rows, input_ids, mask in left_padded_batches(ids, batch_size, pad_id, model.device,
                                                         progress, "next token"):
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            res = model(input_ids=input_ids, attention_mask=mask, position_ids=pos, use_cache=False,
                        **({keep: 1} if keep else {}))
            out[rows] = _pick(res.logits[:, -1], cand)
    return out


def prefixed_logprobs(model: Any, prefix_ids: Sequence[int], suffix_ids: Sequence[Sequence[int]],
                      candidates: Sequence[int], batch_size: int, pad_id: int,
                      progress: bool = False) -> np.ndarray:
    """``[N, C]`` log-softmax after ``prefix_ids + suffix_ids[i]``, the prefix run once.

    A row whose suffix is empty takes the prefix's own last-position log-probs.
    """
    import torch

    out = np.zeros((len(suffix_ids), len(candidates)), dtype=np.float32)
    keep = logits_to_keep_arg(model)
    kept = {keep: 1} if keep else {}
    cand = torch.tensor(list(candidates), dtype=torch.long)
    dev = model.device
    n_prefix = len(prefix_ids)
    with torch.inference_mode():
        head = model(input_ids=torch.tensor([list(prefix_ids)], dtype=torch.long, device=dev),
                     use_cache=True, **kept)
        prefix_cache = output_cache(head)
        cache_arg = cache_kwarg(model)
        empty = [i for i, s in enumerate(suffix_ids) if not s]
        if empty:
            out[empty] = _pick(head.logits[:, -1], cand)
        todo = [i for i, s in enumerate(suffix_ids) if s]
        batches = left_padded_batches([suffix_ids[i] for i in todo], batch_size, pad_id, dev,
                                      progress, "next token")
        for rows, input_ids, mask in batches:
            b = len(rows)
            cache = copy.deepcopy(prefix_cache)
            cache.batch_repeat_interleave(b)
            attn = torch.cat([torch.ones((b, n_prefix), dtype=mask.dtype, device=dev), mask], dim=1)
            pos = n_prefix + (mask.cumsum(-1) - 1).clamp(min=0)
            res = model(input_ids=input_ids, attention_mask=attn, position_ids=pos,
                        use_cache=True, **{cache_arg: cache}, **kept)
            out[[todo[r] for r in rows]] = _pick(res.logits[:, -1], cand)
    return out


def _pick(last_logits: Any, cand: Any) -> np.ndarray:
    import torch

    logp = torch.log_softmax(last_logits.float(), dim=-1)
    return logp[:, cand.to(logp.device)].cpu().numpy()


def cache_kwarg(model: Any) -> str:
    """The name under which ``model.forward`` takes a KV cache (``cache`` in newer transformers)."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def output_cache(output: Any) -> Any:
    """The KV cache a forward pass returned (``cache``, formerly ``past_key_values``)."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def logits_to_keep_arg(model: Any) -> str | None:
    """The name under which ``model.forward`` takes "compute logits for the last k positions only"."""
    params = inspect.signature(model.forward).parameters
    for name in ("logits_to_keep", "num_logits_to_keep"):
        if name in params:
            return name
    return None
