"""Exact inference shortcut for BERT-family cross-encoders: the last layer for [CLS] only.

A sequence-classification head of BERT, RoBERTa, XLM-R, ELECTRA or CamemBERT
reads only the first token of the last layer. Every other position of that
layer is computed and thrown away: its query projection, attention output,
feed-forward block and layer norms (about 5/6 of the layer). ``cls_only_last_layer``
swaps the last encoder layer for one that computes keys and values for all
tokens but everything else for [CLS] alone, so the logits are the same (up to
float summation order, ~1e-6) at about 1/6 less compute for a 6-layer model.
The swap is undone on exit, so the model saves and trains as before.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

# Heads that read the first token of the last hidden state and nothing else.
CLS_HEAD_CLASSES = frozenset({
    "BertForSequenceClassification", "RobertaForSequenceClassification",
    "XLMRobertaForSequenceClassification", "ElectraForSequenceClassification",
    "CamembertForSequenceClassification",
})


def _bert_layers(model: Any) -> Any | None:
    """The encoder's layer list when the model is a BERT-family classifier we can shortcut."""
    if type(model).__name__ not in CLS_HEAD_CLASSES or getattr(model.config, "is_decoder", False):
        return None
    layers = getattr(getattr(model.base_model, "encoder", None), "layer", None)
    if not layers:
        return None
    last = layers[-1]
    attn = getattr(last, "attention", None)
    parts = (getattr(attn, "self", None), getattr(attn, "output", None),
             getattr(last, "intermediate", None), getattr(last, "output", None))
    if any(p is None for p in parts) or not all(hasattr(parts[0], n) for n in ("query", "key", "value")):
        return None
    return layers


def supports_cls_only(model: Any) -> bool:
    return _bert_layers(model) is not None


# One wrapper per original layer, reused on every call (a compiled model then keeps its graph).
_WRAPPERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _last_layer_for_cls(layer: Any) -> Any:
    wrapper = _WRAPPERS.get(layer)
    if wrapper is None:
        wrapper = _WRAPPERS[layer] = _wrapper_class()(layer)
    return wrapper


@lru_cache(maxsize=1)
def _wrapper_class() -> type:
    import torch
    import torch.nn.functional as F

    class ClsOnlyLayer(torch.nn.Module):
        """Computes the wrapped layer's output at position 0 only (shape [B, 1, H])."""

        def __init__(self, inner: Any):
            super().__init__()
            self.inner = inner

        def forward(self, hidden_states: Any, attention_mask: Any = None, *args: Any, **kwargs: Any) -> Any:
            inner = self.inner
            sa = inner.attention.self
            b, s, _ = hidden_states.shape
            heads, size = sa.num_attention_heads, sa.attention_head_size
            cls = hidden_states[:, :1]
            q = sa.query(cls).view(b, 1, heads, size).transpose(1, 2)
            k = sa.key(hidden_states).view(b, s, heads, size).transpose(1, 2)
            v = sa.value(hidden_states).view(b, s, heads, size).transpose(1, 2)
            mask = attention_mask
            if mask is not None:  # [B, 1, S, S] (sdpa / eager) or a [B, S] padding mask
                mask = mask[:, None, None, :].bool() if mask.dim() == 2 else mask[:, :, :1, :]
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=getattr(sa, "scaling", None))
            ctx = ctx.transpose(1, 2).reshape(b, 1, heads * size)
            out = inner.attention.output(ctx, cls)
            return inner.output(inner.intermediate(out), out)

    return ClsOnlyLayer


@contextmanager
def cls_only_last_layer(model: Any, enabled: bool = True) -> Iterator[bool]:
    """Within the block the model's last layer computes [CLS] only; yields whether it does."""
    layers = _bert_layers(model) if enabled and not model.training else None
    if layers is None:
        yield False
        return
    original = layers[-1]
    if type(original).__name__ == "ClsOnlyLayer":  # already inside such a block
        yield True
        return
    layers[-1] = _last_layer_for_cls(original)
    try:
        yield True
    finally:
        layers[-1] = original


__all__ = ["cls_only_last_layer", "supports_cls_only", "CLS_HEAD_CLASSES"]
