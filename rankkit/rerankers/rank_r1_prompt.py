"""Rank-R1's setwise prompt (reasoning in ``<think>``, a label in ``<answer>``) and a robust answer parser.

The wording follows Rank-R1 (Zhuang et al., 2025, ielab/llm-rankers): an R1-style
system message, the query, the candidates labelled ``[1]``..``[n]``, and the
instruction to answer with the most relevant label in square brackets inside
``<answer>`` tags. Generation may be prefilled with ``<think>`` (``PREFILL``), so
a small model starts in the format.

The parser never raises: every output gets a ``status``; only ``"ok"`` yields a
winner, anything else makes the caller keep the first-stage order for that
comparison (the reference's fallback) and count the status.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

SYSTEM = ("A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
          "The assistant first thinks about the reasoning process in the mind and then provides the user "
          "with the answer. The reasoning process and answer are enclosed within <think> </think> and "
          "<answer> </answer> tags, respectively, i.e., <think> reasoning process here </think> "
          "<answer> answer here </answer>.")
USER = ('Given the query: "{query}", which of the following documents is most relevant?\n{docs}\n'
        "After completing the reasoning process, please provide only the label of the most relevant "
        "document to the query, enclosed in square brackets, within the answer tags. For example, if the "
        "third document is the most relevant, the answer should be: <think> reasoning process here "
        "</think> <answer>[3]</answer>.")
#: a short variant for CPU budgets (no system message; one instruction line, same tags and labels)
COMPACT = ('Query: "{query}"\n{docs}\nWhich document is most relevant to the query? Reason briefly, then give '
           "its label, e.g. <think> reasoning </think> <answer>[2]</answer>.")
PROMPTS = ("rank-r1", "compact")
PREFILL = "<think>"
#: parse statuses; all but "ok" fall back to the first-stage order
STATUSES = ("ok", "no_answer", "out_of_set", "several", "truncated", "empty")

_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.S)
_LABEL = re.compile(r"\[\s*(\d+)\s*\]")
_BARE = re.compile(r"^\s*(\d+)\s*$")


def messages(query: str, docs: Sequence[str], style: str = "rank-r1") -> list[dict[str, str]]:
    """Chat messages of one comparison: ``docs`` labelled ``[1]``..``[n]`` in the given order.

    ``style``: "rank-r1" (the paper's wording) or "compact" (about 150 fewer tokens per prompt).
    """
    body = "\n".join(f"[{i + 1}] {d}" for i, d in enumerate(docs))
    if style == "compact":
        return [{"role": "user", "content": COMPACT.format(query=query, docs=body)}]
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER.format(query=query, docs=body)}]


def render(render_chat: Callable[[list[dict[str, str]]], str], query: str, docs: Sequence[str],
           prefill: bool = True, style: str = "rank-r1") -> str:
    """The prompt text (chat-rendered, plus ``<think>`` when ``prefill``)."""
    return render_chat(messages(query, docs, style)) + (PREFILL if prefill else "")


def target(label: int, reasoning: str) -> str:
    """A well-formed completion after the prefilled ``<think>``: reasoning, then ``[label]`` (1-based)."""
    return f" {reasoning.strip()} </think> <answer>[{label}]</answer>"


@dataclass
class Parsed:
    """One parsed output: ``choice`` (0-based, None unless ``status == "ok"``), the reasoning text."""

    choice: int | None
    status: str
    reasoning: str


def parse(text: str, n: int, prefilled: bool = True, finished: bool = True) -> Parsed:
    """Parse a generated answer over ``n`` labels.

    ``prefilled``: the prompt ended with ``<think>`` (so ``text`` starts inside
    it). ``finished``: generation stopped by itself (False: it hit the token
    limit), so an output without a closed ``<answer>`` is "truncated".
    Statuses: ok; empty; no_answer (no ``<answer>`` tag); truncated (limit hit
    before a full answer); several (more than one distinct label); out_of_set.
    """
    raw = text or ""
    body = (PREFILL + raw) if prefilled and PREFILL not in raw[:20] else raw
    think_end = body.find("</think>")
    start = body.find(PREFILL)
    start = start + len(PREFILL) if start >= 0 else 0
    stop = think_end if think_end >= 0 else body.find("<answer>")
    reasoning = body[start:stop if stop >= 0 else len(body)].strip()
    if not raw.strip():
        return Parsed(None, "empty", "")
    m = _ANSWER.search(body)
    if m is None:
        return Parsed(None, "no_answer" if finished else "truncated", reasoning)
    closed = "</answer>" in body[m.start():]
    inner = m.group(1)
    labels = {int(x) for x in _LABEL.findall(inner)}
    if not labels and _BARE.match(inner or ""):
        labels = {int(inner.strip())}
    if not labels:
        return Parsed(None, "truncated" if not (closed or finished) else "no_answer", reasoning)
    if len(labels) > 1:
        return Parsed(None, "several", reasoning)
    label = labels.pop()
    if not 1 <= label <= n:
        return Parsed(None, "out_of_set", reasoning)
    return Parsed(label - 1, "ok", reasoning)


__all__ = ["SYSTEM", "USER", "COMPACT", "PROMPTS", "PREFILL", "STATUSES", "messages", "render", "target", "parse", "Parsed"]
