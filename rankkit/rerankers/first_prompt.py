"""The FIRST / RankGPT listwise prompt: one window of passages, labelled ``[A]``, ``[B]``, ...

The wording follows the RankGPT / RankZephyr prompt FIRST was trained with
(castorini/rank_llm), with letters for identifiers as in the FIRST paper. The
query-independent head (system text + instructions) comes first and ends at a
newline, so its key/value cache is computed once and reused for every window
and query; the query and passages follow. The assistant answer is prefilled
with ``[``: the next token is the first identifier of the ranking, and its
log-probs over the window's identifiers are the FIRST scores.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import ConfigError

#: single letters: one token each for BPE tokenisers that we know of (checked at construction)
LETTERS = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")

SYSTEM = ("You are RankLLM, an intelligent assistant that can rank passages based on their "
          "relevancy to the query.")
PREFILL = "["


def instructions(n: int) -> str:
    """The query-independent head of the user message (ends with a newline: a clean token boundary)."""
    return (f"I will provide you with {n} passages, each indicated by an alphabetical identifier []. "
            "Rank the passages based on their relevance to the search query given below.\n")


def body(query: str, passages: Sequence[str], ids: Sequence[str]) -> str:
    """The per-window rest of the user message: query, labelled passages, answer format."""
    n = len(passages)
    lines = [f"Search Query: {query}", ""]
    lines += [f"[{i}] {' '.join(p.split())}" for i, p in zip(ids, passages)]
    example = " > ".join(f"[{i}]" for i in ids[:2][::-1]) if n > 1 else f"[{ids[0]}]"
    lines += ["", f"Search Query: {query}",
              f"Rank the {n} passages above based on their relevance to the search query. All the "
              "passages should be included and listed using identifiers, in descending order of "
              f"relevance. The output format should be [] > [], e.g., {example}. Only respond with "
              "the ranking results, do not say any word or explain."]
    return "\n".join(lines)


@dataclass(frozen=True)
class WindowPrompt:
    """A rendered window: the full prompt (ending in the prefill), its shared head, and the chat messages."""

    text: str
    prefix: str
    messages: list[dict[str, str]]


def render_window(render: Callable[[list[dict[str, str]]], str], query: str, passages: Sequence[str],
                  ids: Sequence[str]) -> WindowPrompt:
    """The prompt of one window, rendered by the model's chat template, answer prefilled with ``[``."""
    head = instructions(len(passages))
    messages = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": head + body(query, passages, ids)}]
    text = render(messages) + PREFILL
    at = text.find(head)
    if at < 0:
        raise ConfigError("the chat template rewrote the instructions; the shared prefix cannot be found")
    return WindowPrompt(text, text[:at + len(head)], messages)


def answer_text(order: Sequence[int], ids: Sequence[str]) -> str:
    """The target answer after the prefilled ``[``: ``B] > [A] > [C]`` for order (1, 0, 2)."""
    return " > ".join(f"[{ids[i]}]" for i in order)[1:]


@dataclass
class ParsedOrder:
    """A repaired permutation and what had to be repaired."""

    order: list[int]
    missing: int = 0
    duplicate: int = 0
    unknown: int = 0


#: an identifier after "[" (the closing "]" may be cut off at the token limit)
_ID = re.compile(r"\[\s*([^\[\]\s>]{1,3})")


def parse_order(text: str, ids: Sequence[str]) -> ParsedOrder:
    """The permutation a generated answer spells (``[B] > [A] ...``), repaired.

    Unknown identifiers and repeats are dropped, missing ones appended in their
    window order (first-stage order), each counted.
    """
    index = {s: k for k, s in enumerate(ids)}
    seen: set[int] = set()
    out = ParsedOrder([])
    for tok in _ID.findall(text if text.lstrip().startswith("[") else PREFILL + text):
        k = index.get(tok, index.get(tok.upper()))
        if k is None:
            out.unknown += 1
        elif k in seen:
            out.duplicate += 1
        else:
            seen.add(k)
            out.order.append(k)
    rest = [k for k in range(len(ids)) if k not in seen]
    out.missing = len(rest)
    out.order += rest
    return out


__all__ = ["LETTERS", "SYSTEM", "PREFILL", "WindowPrompt", "render_window", "answer_text", "ParsedOrder",
           "parse_order", "instructions", "body"]
