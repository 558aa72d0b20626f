"""rk.Generator on a tiny random Llama (SmolLM2 tokenizer): classification scores equal a
one-sequence-at-a-time reference, batched greedy answers equal unbatched ones, citations map
to docids, and bad input (no passages, long passages, unknown labels) is handled."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_llm import tiny_llm_dir

import rankkit as rk
from rankkit.errors import ConfigError, RankkitError
from rankkit.llm.backends import Backend, Generation

torch = pytest.importorskip("torch")
LABELS = ["SUPPORT", "CONTRADICT", "NOT_ENOUGH_INFO"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny():
    return str(tiny_llm_dir())


@pytest.fixture(scope="module")
def corpus():
    return rk.Corpus(["d1", "d2", "d3", "d4"],
                     ["Plants turn light into sugar.", "Fleming found penicillin in 1928.",
                      "Quakes release stress on faults.", "Light travels fast."],
                     ["Photosynthesis", "Penicillin", "Earthquakes", "Light"])


QUERIES = rk.Queries({"a": "How do plants make food?", "b": "Who found penicillin?",
                      "c": "What causes earthquakes and how are they measured on the scale?"})
RUN = rk.Run({"a": (["d1", "d4", "d2"], [3.0, 2.0, 1.0]), "b": (["d2"], [1.0]),
              "c": (["d3", "d1"], [2.0, 1.0])})


def reference_scores(model, tok, prompts, labels):
    """Sum of label-token log-probs, one unpadded sequence per (prompt, label)."""
    out = np.zeros((len(prompts), len(labels)))
    with torch.inference_mode():
        for i, p in enumerate(prompts):
            pid = tok(p, add_special_tokens=False)["input_ids"]
            for j, lab in enumerate(labels):
                lid = tok(lab, add_special_tokens=False)["input_ids"]
                logp = torch.log_softmax(model(torch.tensor([pid + lid])).logits[0].float(), -1)
                out[i, j] = sum(logp[len(pid) - 1 + t, lid[t]].item() for t in range(len(lid)))
    return out


def test_label_scores_equal_unbatched_reference(tiny):
    from rankkit.llm.transformers_backend import TransformersBackend

    be = TransformersBackend(tiny)
    prompts = [be.render([{"role": "user", "content": "claim " + "word " * n}]) for n in (0, 9, 3, 17, 1)]
    labels = [*LABELS, "X"]  # 3, 4, 8 and 1 tokens: exercises the cached continuation pass
    scores, errors = be.score_labels(prompts, labels, batch_size=2)
    assert errors == [None] * 5
    expected = reference_scores(be.model, be.tokenizer, prompts, labels)
    np.testing.assert_allclose(scores, expected, atol=1e-3)
    single, _ = be.score_labels(prompts, ["X", "Y"], batch_size=4)  # one-token labels only
    np.testing.assert_allclose(single, reference_scores(be.model, be.tokenizer, prompts, ["X", "Y"]),
                               atol=1e-3)


def test_classify_mode_picks_the_most_likely_label(tiny, corpus):
    gen = rk.Generator(tiny, corpus=corpus, mode="classify", labels=LABELS, k=2, batch_size=2,
                       show_progress=False)
    result = (rk.RunStage(RUN) >> gen)(QUERIES)
    for qid, a in result.answers.items():
        assert a.error is None and a.label in LABELS and a.text == a.label
        assert a.label == max(a.label_scores, key=a.label_scores.get)
        assert a.context == RUN.docids(qid)[:2].tolist()
        assert "[1] " in a.prompt and QUERIES[qid] in a.prompt and "SUPPORT, CONTRADICT" in a.prompt
    be = gen.backend
    expected = reference_scores(be.model, be.tokenizer, [result.answers["a"].prompt], LABELS)[0]
    np.testing.assert_allclose([result.answers["a"].label_scores[lab] for lab in LABELS], expected,
                               atol=1e-3)
    assert result.run == RUN


def test_calibration_subtracts_the_content_free_scores(tiny, corpus):
    raw = rk.Generator(tiny, corpus=corpus, mode="classify", labels=LABELS, show_progress=False)
    cal = rk.Generator(tiny, corpus=corpus, mode="classify", labels=LABELS, calibrate=True,
                       show_progress=False)
    prior = raw.label_prior()
    a_raw = (rk.RunStage(RUN) >> raw)(QUERIES).answers
    a_cal = (rk.RunStage(RUN) >> cal)(QUERIES).answers
    for qid in QUERIES:
        adjusted = np.array([a_raw[qid].label_scores[lab] for lab in LABELS]) - prior
        np.testing.assert_allclose([a_cal[qid].label_scores[lab] for lab in LABELS], adjusted, atol=1e-4)
        assert a_cal[qid].label == LABELS[int(np.argmax(adjusted))]
    assert set(cal.stats["label_prior"]) == set(LABELS)


def test_verbaliser_mapping_scores_the_given_texts(tiny, corpus):
    gen = rk.Generator(tiny, corpus=corpus, mode="classify", show_progress=False,
                       labels={"SUPPORT": "yes", "CONTRADICT": "no"})
    a = gen(QUERIES, RUN).answers["b"]
    assert set(a.label_scores) == {"SUPPORT", "CONTRADICT"} and a.label in ("SUPPORT", "CONTRADICT")
    assert "yes, no" in a.prompt


def test_label_configuration_errors(tiny):
    with pytest.raises(ConfigError, match="needs labels"):
        rk.Generator(tiny, mode="classify")
    with pytest.raises(ConfigError, match="for mode='classify'"):
        rk.Generator(tiny, mode="answer", labels=LABELS)
    with pytest.raises(ConfigError, match="duplicate"):
        rk.Generator(tiny, mode="classify", labels=["A", "B", "A"])
    with pytest.raises(ConfigError, match="not the string"):
        rk.Generator(tiny, mode="classify", labels="SUPPORT")
    with pytest.raises(ConfigError, match="unknown generator mode"):
        rk.Generator(tiny, mode="summarise")
    with pytest.raises(ConfigError, match="k must be"):
        rk.Generator(tiny, k=-1)
    with pytest.raises(ConfigError, match="unknown LLM backend"):
        rk.Generator(tiny, backend="llamacpp")


def test_batched_greedy_answers_equal_unbatched_generate(tiny, corpus):
    gen = rk.Generator(tiny, corpus=corpus, k=3, max_new_tokens=6, batch_size=3, show_progress=False)
    result = gen(QUERIES, RUN)
    model, tok = gen.backend.model, gen.backend.tokenizer
    with torch.inference_mode():
        for a in result.answers.values():
            enc = tok(a.prompt, add_special_tokens=False, return_tensors="pt")
            out = model.generate(**enc, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
            expected = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()
            assert a.text == expected
            assert a.prompt.startswith("<|im_start|>system")  # the chat template was applied
    assert len({a.text for a in result.answers.values()}) > 1  # real, differing generations


class Scripted(Backend):
    """Answers with a fixed text per query word, to test the stage's plumbing exactly."""

    name = "scripted"
    model_name = "scripted"

    def __init__(self, replies):
        self.replies, self.seen = replies, []

    def render(self, messages):
        return "\n".join(m["content"] for m in messages)

    def count_tokens(self, texts):
        return [len(t.split()) for t in texts]

    def truncate(self, text, n):
        return " ".join(text.split()[:n])

    def generate(self, prompts, messages, max_new_tokens, batch_size, progress=False, **kw):
        self.seen.extend(prompts)
        return [Generation(next(v for k, v in self.replies.items() if k in p), 3) for p in prompts]


def test_citations_map_back_to_docids_and_uncited_answers_are_counted(corpus):
    be = Scripted({"plants": "Light makes sugar [1], fast [2][9].", "penicillin": "Fleming.",
                   "earthquakes": "Faults [2, 1]"})
    gen = rk.Generator(backend=be, corpus=corpus, k=3)
    answers = gen(QUERIES, RUN).answers
    assert answers["a"].citations == ["d1", "d4"]           # [9] is not a passage: ignored
    assert answers["c"].citations == ["d1", "d3"]           # [2, 1] -> second, first passage
    assert answers["b"].citations == [] and gen.stats["uncited"] == 1
    assert answers["a"].context == ["d1", "d4", "d2"]


def test_empty_retrieval_and_missing_corpus(corpus):
    be = Scripted({"": "I do not know."})
    gen = rk.Generator(backend=be, corpus=corpus)
    run = rk.Run({"a": (["d1"], [1.0])})                    # b and c retrieved nothing
    answers = gen(QUERIES, run).answers
    assert answers["b"].context == [] and "(no passages were retrieved)" in answers["b"].prompt
    assert answers["b"].text == "I do not know." and gen.stats["no_passages"] == 2
    alone = rk.Generator(backend=Scripted({"": "x"}))       # no run and no corpus: fine
    assert alone(QUERIES).answers["a"].context == []
    with pytest.raises(ConfigError, match="needs corpus="):
        rk.Generator(backend=Scripted({"": "x"}))(QUERIES, run)
    with pytest.raises(RankkitError, match="not in the Generator's corpus"):
        rk.Generator(backend=Scripted({"": "x"}), corpus={"zz": "t"})(QUERIES, run)


def test_long_passages_are_truncated_to_the_budget_and_counted(tiny):
    long_corpus = rk.Corpus(["L1", "L2", "S"], ["alpha " * 400, "beta " * 300, "short text"])
    gen = rk.Generator(tiny, corpus=long_corpus, k=3, max_new_tokens=4, show_progress=False)
    result = gen(rk.Queries({"q": "what?"}), rk.Run({"q": (["L1", "L2", "S"], [3.0, 2.0, 1.0])}))
    a = result.answers["q"]
    n_tokens = len(gen.backend.tokenizer(a.prompt, add_special_tokens=False)["input_ids"])
    assert n_tokens <= 512 - 4                              # the tiny model's window minus the answer
    assert gen.stats["truncated_passages"] == 2 and gen.stats["truncated_queries"] == 1
    assert "[3] short text" in a.prompt and a.error is None
    capped = rk.Generator(tiny, corpus=long_corpus, k=3, max_passage_tokens=5, show_progress=False,
                          max_new_tokens=2)
    p = capped(rk.Queries({"q": "what?"}), rk.Run({"q": (["L1", "S"], [2.0, 1.0])})).answers["q"].prompt
    assert "[1] alpha alpha alpha alpha alpha\n[2] short text" in p
    assert capped.stats["truncated_passages"] == 1


def test_generator_must_be_last_and_describes_itself(corpus):
    gen = rk.Generator(backend=Scripted({"": "x"}), corpus=corpus, k=2)
    with pytest.raises(RankkitError, match="generator must be last"):
        (rk.RunStage(RUN) >> gen >> rk.RunStage(RUN))(QUERIES)
    d = gen.describe()
    assert d["stage"] == "generator" and d["mode"] == "answer" and d["k"] == 2

