"""Fitting passages into the context budget: truncate the longest first, count what was cut.

Prompts are rendered and counted for all queries at once; only the queries over
budget are cut and re-rendered. Passages are shortened by "water-filling": the
longest are cut down to a common cap, so short passages survive intact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..llm.backends import Backend, Messages
from .prompts import PromptTemplate


@dataclass
class BuiltPrompts:
    messages: list[Messages]
    prompts: list[str]
    #: per query: how many of its passages were truncated
    truncated: list[int]
    #: per query: why no prompt could be built (None when fine)
    errors: list[str | None] = field(default_factory=list)


def water_fill_cap(lengths: Sequence[int], excess: int) -> int:
    """Largest cap ``c`` with ``sum(max(0, L - c)) >= excess`` (0 if even that is not enough)."""
    lo, hi = 0, max(lengths, default=0)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(max(0, n - mid) for n in lengths) >= excess:
            lo = mid
        else:
            hi = mid - 1
    return lo


def build_prompts(template: PromptTemplate, backend: Backend, queries: Sequence[str],
                  passages: Sequence[Sequence[str]], titles: Sequence[Sequence[str]] | None,
                  budget: int | None, labels: Sequence[str] = ()) -> BuiltPrompts:
    """Render one prompt per query, cutting passages so each fits ``budget`` tokens."""
    n = len(queries)
    titles = titles if titles is not None else [[""] * len(p) for p in passages]
    texts = [list(p) for p in passages]
    messages = [template.messages(q, t, ti, labels) for q, t, ti in zip(queries, texts, titles)]
    prompts = [backend.render(m) for m in messages]
    truncated = [0] * n
    errors: list[str | None] = [None] * n
    if budget is None:
        return BuiltPrompts(messages, prompts, truncated, errors)
    lengths = backend.count_tokens(prompts)
    over = [i for i in range(n) if lengths[i] > budget]
    for _ in range(4):  # re-tokenising a cut passage can shift a token or two: retry a few times
        if not over:
            break
        still = []
        for i in over:
            plen = backend.count_tokens(texts[i])
            cap = water_fill_cap(plen, lengths[i] - budget)
            cut = [backend.truncate(t, cap) if L > cap else t for t, L in zip(texts[i], plen)]
            truncated[i] = max(truncated[i], sum(1 for t, L in zip(texts[i], plen) if L > cap))
            texts[i] = cut
            messages[i] = template.messages(queries[i], cut, titles[i], labels)
            prompts[i] = backend.render(messages[i])
        new_lengths = backend.count_tokens([prompts[i] for i in over])
        for i, L in zip(over, new_lengths):
            lengths[i] = L
            if L > budget:
                if all(not t for t in texts[i]):
                    errors[i] = (f"the prompt needs {L} tokens without any passage text, more than "
                                 f"the context budget of {budget}")
                else:
                    still.append(i)
        over = still
    for i in over:
        errors[i] = f"could not fit the prompt into {budget} tokens ({lengths[i]} after truncation)"
    return BuiltPrompts(messages, prompts, truncated, errors)
