"""Prompt templates for generators: numbered passages in, citations ``[n]`` out.

A template is a system message plus a user message with placeholders
``{query}``, ``{passages}`` and (classification) ``{labels}``. Placeholders are
replaced literally, so a template may hold other braces (JSON examples) without
escaping. Users override a template with a string, a ``.txt`` file (the user
message), a ``.json``/``.yaml`` file (``system``, ``user``, ``no_passages``,
``passage``) or a :class:`PromptTemplate`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataFormatError

PLACEHOLDERS = ("{query}", "{passages}", "{labels}")


@dataclass(frozen=True)
class PromptTemplate:
    """How one query and its passages become chat messages."""

    user: str
    system: str | None = None
    #: how one passage is written; ``{n}`` is its number, ``{text}`` its text, ``{title}``
    passage: str = "[{n}] {text}"
    #: replaces ``{passages}`` when the run has no passages for a query
    no_passages: str = "(no passages were retrieved)"
    name: str = "custom"

    def __post_init__(self) -> None:
        if "{query}" not in self.user:
            raise ConfigError(f"prompt template {self.name!r} has no {{query}} placeholder in its "
                              "user message")
        if "{text}" not in self.passage:
            raise ConfigError(f"prompt template {self.name!r}: the passage format needs {{text}}")

    def format_passages(self, texts: Sequence[str], titles: Sequence[str] | None = None) -> str:
        """Passages numbered ``[1]..[k]`` (one per line), or the ``no_passages`` text."""
        if not texts:
            return self.no_passages
        titles = titles if titles is not None else [""] * len(texts)
        return "\n".join(
            self.passage.replace("{n}", str(i)).replace("{title}", ti).replace("{text}", tx)
            for i, (tx, ti) in enumerate(zip(texts, titles), 1))

    def messages(self, query: str, texts: Sequence[str], titles: Sequence[str] | None = None,
                 labels: Sequence[str] = ()) -> list[dict[str, str]]:
        """Chat messages for one query (system first when the template has one)."""
        values = {"{query}": query, "{passages}": self.format_passages(texts, titles),
                  "{labels}": ", ".join(labels)}
        user = _fill(self.user, values)
        out = [{"role": "system", "content": _fill(self.system, values)}] if self.system else []
        out.append({"role": "user", "content": user})
        return out


def _fill(text: str, values: dict[str, str]) -> str:
    # one pass over the template, so a placeholder inside a passage stays literal
    return re.sub(r"\{(query|passages|labels)\}", lambda m: values[m.group(0)], text)


#: built-in templates by name
PROMPTS: dict[str, PromptTemplate] = {
    "answer": PromptTemplate(
        name="answer",
        system="You answer questions from numbered passages and cite them in square brackets.",
        user=("Passages:\n{passages}\n\nQuestion: {query}\n\nAnswer in one or two sentences "
              "using the passages, and cite the passage numbers in square brackets, e.g. [1]."),
    ),
    "verify": PromptTemplate(
        name="verify",
        system=("You check scientific claims against the numbered evidence passages. Reply with "
                "one label: {labels}."),
        user=("Evidence:\n{passages}\n\nClaim: {query}\n\nDoes the evidence support or "
              "contradict the claim, or is there not enough information? Label:"),
        no_passages="(no evidence available)",
    ),
    "summarize": PromptTemplate(
        name="summarize",
        system="You summarise numbered passages faithfully and cite them in square brackets.",
        user=("Passages:\n{passages}\n\nTopic: {query}\n\nSummarise what the passages say about "
              "the topic in two or three sentences, citing passage numbers in square brackets, e.g. [1]."),
    ),
}

#: default template per generator mode
DEFAULT_PROMPT = {"answer": "answer", "classify": "verify", "summarize": "summarize"}


def load_prompt(spec: str | Path | PromptTemplate | dict[str, Any] | None,
                mode: str = "answer") -> PromptTemplate:
    """Resolve a template: a name in :data:`PROMPTS`, a file, a template string or a mapping."""
    if spec is None:
        return PROMPTS[DEFAULT_PROMPT[mode]]
    if isinstance(spec, PromptTemplate):
        return spec
    if isinstance(spec, dict):
        return _from_mapping(spec, "prompt")
    text = str(spec)
    if text in PROMPTS:
        return PROMPTS[text]
    if isinstance(spec, Path) or (len(text) < 1024 and "\n" not in text and "{" not in text):
        path = Path(text).expanduser()
        if not path.is_file():
            raise ConfigError(f"prompt {text!r} is neither a built-in template "
                              f"({', '.join(PROMPTS)}), a file, nor a template with {{query}}")
        return _from_file(path)
    base = PROMPTS[DEFAULT_PROMPT[mode]]
    return replace(base, user=text, name="custom")


def _from_file(path: Path) -> PromptTemplate:
    content = path.read_text(encoding="utf-8")
    if path.suffix in (".json", ".yaml", ".yml"):
        try:
            if path.suffix == ".json":
                data = json.loads(content)
            else:
                import yaml

                data = yaml.safe_load(content)
        except Exception as e:
            raise DataFormatError(f"cannot parse prompt file ({e})", path) from None
        if not isinstance(data, dict):
            raise DataFormatError("a prompt file holds a mapping with 'user' (and 'system', "
                                  "'passage', 'no_passages')", path)
        return _from_mapping(data, str(path))
    return PromptTemplate(user=content.strip(), system=None, name=path.stem)


def _from_mapping(data: dict[str, Any], where: str) -> PromptTemplate:
    known = {"user", "system", "passage", "no_passages", "name"}
    unknown = set(data) - known
    if unknown or "user" not in data:
        raise ConfigError(f"{where}: a prompt needs 'user' and may have {sorted(known - {'user'})}"
                          + (f"; unknown keys {sorted(unknown)}" if unknown else ""))
    return PromptTemplate(**{k: str(v) for k, v in data.items()})


# --------------------------------------------------------------------- citations
_CITE = re.compile(r"\[(\s*\d+\s*(?:[,;]\s*\d+\s*)*)\]")


def parse_citations(text: str, n_passages: int) -> list[int]:
    """Passage numbers cited as ``[n]``, ``[n, m]`` or ``[n][m]``, in order, without repeats.

    Numbers outside ``1..n_passages`` are ignored (the model made them up).
    """
    seen: dict[int, None] = {}
    for group in _CITE.findall(text):
        for part in re.split(r"[,;]", group):
            n = int(part)
            if 1 <= n <= n_passages:
                seen.setdefault(n, None)
    return list(seen)


def map_citations(text: str, context: Sequence[str]) -> list[str]:
    """Docids of the passages ``text`` cites, given the prompt's passage order."""
    return [context[n - 1] for n in parse_citations(text, len(context))]


def strip_citations(text: str) -> str:
    """The answer without its ``[n]`` markers (for exact match / token F1)."""
    return re.sub(r"\s+", " ", _CITE.sub("", text)).strip()
