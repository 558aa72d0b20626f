"""The relevance score of a sequence-classification head, shared by inference and training.

A cross-encoder head has one logit (the score) or one logit per class (the
relevant class's logit is the score); ``CrossEncoder`` and the trainer read
scores through :func:`relevance_logit` so they agree on which logit that is.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError


def relevance_logit(logits: Any, label: int | None = None) -> Any:
    """The relevance score from a head: the single logit, or the relevant class's logit."""
    if logits.shape[-1] == 1:
        return logits[..., 0]
    if label is None:
        if logits.shape[-1] != 2:
            raise ConfigError(f"a head with {logits.shape[-1]} labels needs label= (the relevant class)")
        label = 1
    return logits[..., label]
