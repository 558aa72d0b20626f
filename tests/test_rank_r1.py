"""Rank-R1: the answer parser on real and malformed outputs, rewards, and the reranker with a fake backend."""

from __future__ import annotations

import numpy as np
import pytest

import rankkit as rk
from rankkit.llm.backends import Generation
from rankkit.rerankers.rank_r1 import RankR1Reranker
from rankkit.rerankers.rank_r1_prompt import messages, parse
from rankkit.training.rank_r1_rewards import format_reward, relevance_reward

# (generated text after the prefilled <think>, finished?, status, choice)
TABLE = [
    (" Doc 2 talks about the query. </think> <answer>[2]</answer>", True, "ok", 1),
    (" short </think>\n<answer> [ 3 ] </answer>", True, "ok", 2),
    (" bare label </think> <answer>1</answer>", True, "ok", 0),
    ("<think> repeated think tag </think> <answer>[4]</answer>", True, "ok", 3),
    (" same label twice </think> <answer>[2] [2]</answer>", True, "ok", 1),
    (" no tags at all, the answer is [2]", True, "no_answer", None),
    (" reasoning that goes on and on and on", False, "truncated", None),
    (" cut inside the answer </think> <answer>", False, "truncated", None),
    (" outside </think> <answer>[7]</answer>", True, "out_of_set", None),
    (" zero </think> <answer>[0]</answer>", True, "out_of_set", None),
    (" two </think> <answer>[1] or [3]</answer>", True, "several", None),
    (" words </think> <answer>document one</answer>", True, "no_answer", None),
    ("", True, "empty", None),
]


@pytest.mark.parametrize("text,finished,status,choice", TABLE)
def test_parser_table(text, finished, status, choice):
    p = parse(text, 4, prefilled=True, finished=finished)
    assert (p.status, p.choice) == (status, choice)


def test_parser_keeps_the_reasoning():
    p = parse(" Doc 2 matches. </think> <answer>[2]</answer>", 3)
    assert p.reasoning == "Doc 2 matches."
    assert "[1] alpha\n[2] beta" in messages("q", ["alpha", "beta"])[1]["content"]


def test_rewards():
    comps = [" ok </think> <answer>[2]</answer>", " ok </think> <answer>[1]</answer>",
             " no answer", " ok </think> <answer>[2]</answer> trailing", " x </think> <answer>[9]</answer>"]
    grades = [[0, 2, 1], [0, 2, 1], [0, 2, 1], [0, 1, 0], [1, 0, 0]]
    assert format_reward(comps) == [1.0, 1.0, 0.0, 0.0, 1.0]
    assert relevance_reward(comps, grades) == [1.0, 0.0, 0.0, 1.0, 0.0]
    assert relevance_reward([" a </think> <answer>[3]</answer>"], [[0, 2, 1]]) == [0.5]   # graded


class FakeBackend:
    """Answers every comparison with the label of the passage holding the highest number in its text;
    a query containing "broken" gets unparseable output."""

    def __init__(self):
        self.calls = []

    def render(self, msgs):
        return "\n".join(m["content"] for m in msgs)

    def count_tokens(self, texts):
        return [len(t.split()) for t in texts]

    def truncate(self, text, n):
        return " ".join(text.split()[:n])

    def generate(self, prompts, msgs, max_new_tokens, batch_size, progress=False):
        self.calls.append(len(prompts))
        out = []
        for p in prompts:
            lines = [ln for ln in p.split("\n") if ln.startswith("[")]
            if "broken" in p:
                out.append(Generation(text=" I keep thinking", n_tokens=max_new_tokens))
                continue
            vals = [int(ln.split("value")[1].split()[0]) for ln in lines]
            k = int(np.argmax(vals)) + 1
            out.append(Generation(text=f" value of [{k}] is highest </think> <answer>[{k}]</answer>", n_tokens=9))
        return out


def _reranker(sort="heap", top_k=10):
    corpus = {f"d{i}": f"value {i * 7 % 23} passage" for i in range(23)}
    return RankR1Reranker(corpus=corpus, set_size=4, top_k=top_k, sort=sort, backend=FakeBackend()), corpus


@pytest.mark.parametrize("sort", ["heap", "bubble"])
def test_reranker_sorts_batches_and_exposes_reasoning(sort):
    rr, corpus = _reranker(sort)
    qs = rk.Queries({"q1": "find values", "q2": "more values", "q3": "broken query"})
    docs = {q: [f"d{i}" for i in range(20 - 5 * j)] for j, q in enumerate(qs)}
    run = rk.Run({q: (np.array(d), -np.arange(len(d), dtype=float)) for q, d in docs.items()})
    out = rr(qs, run)
    for q in ("q1", "q2"):
        got = out.docids(q).tolist()
        want = sorted(docs[q], key=lambda d: -int(corpus[d].split()[1]))
        assert got[:10] == want[:10]
    assert sorted(out.docids("q3").tolist()) == sorted(docs["q3"])       # nothing dropped
    assert out.docids("q3").tolist()[:10] == docs["q3"][:10]              # fallback: first-stage order
    assert max(rr.backend.calls) == 3 and len(rr.backend.calls) < rr.stats["comparisons"]   # lock-step batches
    assert rr.stats["parse"]["truncated"] > 0 and rr.stats["parse"]["ok"] > 0
    rec = out.extras["reasoning"]["q1"][0]
    assert rec["status"] == "ok" and "highest" in rec["reasoning"] and rec["winner"] in rec["candidates"]
    assert set(out.extras["reasoning"]) == {"q1", "q2", "q3"}


def test_reranker_via_registry_and_bad_options():
    rr = rk.make_reranker("rank-r1", corpus={"a": "x"}, backend=FakeBackend(), set_size=3)
    assert isinstance(rr, RankR1Reranker) and rk.RankR1Reranker is RankR1Reranker
    with pytest.raises(rk.ConfigError):
        RankR1Reranker(corpus={}, backend=FakeBackend(), sort="quick")
    with pytest.raises(rk.ConfigError):
        RankR1Reranker(corpus={}, backend=FakeBackend(), set_size=1)


def test_compact_prompt_keeps_labels_and_tags():
    msgs = messages("q?", ["alpha", "beta"], style="compact")
    assert len(msgs) == 1 and "[2] beta" in msgs[0]["content"] and "<answer>[2]</answer>" in msgs[0]["content"]
    rr = RankR1Reranker(corpus={"a": "x"}, backend=FakeBackend(), prompt="compact")
    assert rr.params()["prompt"] == "compact"
    with pytest.raises(rk.ConfigError):
        RankR1Reranker(corpus={}, backend=FakeBackend(), prompt="long")
