"""Rank-R1 rewards for trl's GRPOTrainer: well-formed output, and the chosen label is relevant.

Completions start after the prefilled ``<think>``. Both functions follow trl's
reward-function contract ``f(prompts, completions, **columns) -> list[float]``;
``grades`` (graded relevance per position of each set) comes from the dataset.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..rerankers.rank_r1_prompt import parse

_FORMAT = re.compile(r"^(?:\s*<think>)?(?:(?!<think>|</think>|<answer>).)*</think>\s*<answer>\s*\[\d+\]\s*</answer>\s*$",
                     re.S)


def _text(c: Any) -> str:
    """A completion as text (conversational completions are lists of messages)."""
    if isinstance(c, list):
        return "".join(m.get("content", "") for m in c if isinstance(m, dict))
    return str(c)


def format_reward(completions: Sequence[Any], **_: Any) -> list[float]:
    """1.0 for ``reasoning </think> <answer>[k]</answer>`` and nothing after it, else 0.0."""
    return [1.0 if _FORMAT.match(_text(c)) else 0.0 for c in completions]


def relevance_reward(completions: Sequence[Any], grades: Sequence[Sequence[int]], **_: Any) -> list[float]:
    """Grade of the chosen candidate / the best grade in its set (0 for an unparseable answer)."""
    out = []
    for c, g in zip(completions, grades):
        p = parse(_text(c), len(g), prefilled=True)
        best = max(g) if len(g) else 0
        out.append(float(g[p.choice]) / best if p.choice is not None and best > 0 else 0.0)
    return out


__all__ = ["format_reward", "relevance_reward"]
