"""Prompt templates, citation parsing/mapping and fitting passages into the context budget."""

from __future__ import annotations

import json

import pytest

from rankkit.errors import ConfigError, DataFormatError
from rankkit.generators.context import build_prompts, water_fill_cap
from rankkit.generators.prompts import (
    PROMPTS,
    PromptTemplate,
    load_prompt,
    map_citations,
    parse_citations,
    strip_citations,
)
from rankkit.llm.backends import Backend


def test_passages_are_numbered_from_one():
    tpl = PromptTemplate(user="Q: {query}\n{passages}", system="Labels: {labels}")
    msgs = tpl.messages("why?", ["alpha text", "beta text"], labels=["YES", "NO"])
    assert msgs == [
        {"role": "system", "content": "Labels: YES, NO"},
        {"role": "user", "content": "Q: why?\n[1] alpha text\n[2] beta text"},
    ]


def test_no_passages_text_and_titles():
    tpl = PromptTemplate(user="{query}|{passages}", passage="[{n}] {title}: {text}", no_passages="NONE")
    assert tpl.messages("q", [])[0]["content"] == "q|NONE"
    assert tpl.format_passages(["body"], ["Title"]) == "[1] Title: body"


def test_placeholders_inside_passages_stay_literal():
    tpl = PromptTemplate(user="{passages} // {query}")
    out = tpl.messages("the query", ["a passage mentioning {query} and {labels}"])[0]["content"]
    assert out == "[1] a passage mentioning {query} and {labels} // the query"


def test_load_prompt_by_name_string_and_files(tmp_path):
    assert load_prompt(None, "answer") is PROMPTS["answer"]
    assert load_prompt(None, "classify") is PROMPTS["verify"]
    assert load_prompt("verify") is PROMPTS["verify"]
    custom = load_prompt("Context:\n{passages}\nQ: {query}\nA:")
    assert custom.user.startswith("Context:") and custom.system == PROMPTS["answer"].system

    txt = tmp_path / "mine.txt"
    txt.write_text("Read {passages} then answer {query}\n")
    t = load_prompt(txt)
    assert t.user == "Read {passages} then answer {query}" and t.system is None and t.name == "mine"
    assert load_prompt(str(txt)).user == t.user

    js = tmp_path / "p.json"
    js.write_text(json.dumps({"system": "S {labels}", "user": "U {query}", "passage": "({n}) {text}"}))
    t = load_prompt(js)
    assert t.messages("x", ["p"], labels=["A"]) == [{"role": "system", "content": "S A"},
                                                   {"role": "user", "content": "U x"}]
    assert t.format_passages(["p"]) == "(1) p"
    yml = tmp_path / "p.yaml"
    yml.write_text("user: |\n  Y {query}\nno_passages: nothing\n")
    assert load_prompt(yml).messages("z", [])[0]["content"].strip() == "Y z"


def test_bad_prompts_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"\{query\}"):
        load_prompt("Answer this: {passages}")
    with pytest.raises(ConfigError, match="neither a built-in template"):
        load_prompt("no_such_template")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"user": "{query}", "sytem": "typo"}))
    with pytest.raises(ConfigError, match="unknown keys"):
        load_prompt(bad)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(DataFormatError, match="broken.json"):
        load_prompt(broken)


def test_citations_parsed_in_order_without_repeats_or_made_up_numbers():
    text = "Plants use light [2]. Also [1, 3] and again [2][3]; see [7] and [0]."
    assert parse_citations(text, 3) == [2, 1, 3]
    assert map_citations(text, ["d10", "d20", "d30"]) == ["d20", "d10", "d30"]
    assert map_citations("no citations here (1)", ["d1"]) == []
    assert map_citations("[1]", []) == []
    assert strip_citations("Fleming found it [1][2].  Yes [3, 4]") == "Fleming found it . Yes"


def test_water_fill_cap():
    # cutting 100 and 50 down to 45 removes 55 + 5 = 60 tokens; the short passage is kept
    assert water_fill_cap([10, 50, 100], 60) == 45
    assert water_fill_cap([10, 50, 100], 1) == 99
    assert water_fill_cap([10, 50, 100], 160) == 0
    assert water_fill_cap([], 5) == 0


class WordBackend(Backend):
    """One token per whitespace-separated word: exact, easy to reason about."""

    name = "words"

    def render(self, messages):
        return "\n".join(m["content"] for m in messages)

    def count_tokens(self, texts):
        return [len(t.split()) for t in texts]

    def truncate(self, text, n_tokens):
        return " ".join(text.split()[:n_tokens])


def test_build_prompts_truncates_longest_passages_to_fit():
    tpl = PromptTemplate(user="{query}\n{passages}")
    long_a, long_b, short = " ".join(["a"] * 100), " ".join(["b"] * 60), "c c c"
    built = build_prompts(tpl, WordBackend(), ["q1 q1", "q2"], [[long_a, short, long_b], [short]],
                          None, budget=80)
    n0 = len(built.prompts[0].split())
    assert n0 <= 80
    assert built.truncated == [2, 0]
    assert "[2] c c c" in built.prompts[0]          # the short passage survives intact
    assert built.prompts[1] == "q2\n[1] c c c" and built.errors == [None, None]
    assert built.messages[0][0]["content"] == built.prompts[0]


def test_build_prompts_reports_a_query_that_cannot_fit():
    tpl = PromptTemplate(user="{query}\n{passages}")
    query = " ".join(["w"] * 50)
    built = build_prompts(tpl, WordBackend(), [query, "ok"], [["x y z"], ["x"]], None, budget=20)
    assert built.errors[0] is not None and "context budget of 20" in built.errors[0]
    assert built.errors[1] is None
