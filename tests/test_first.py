"""FIRST reranker: the ranking is the argsort of the identifier logits, the logits path is the default,
windows slide bottom-up, the prefix cache changes nothing, generate mode repairs its answers."""

from __future__ import annotations

import numpy as np
import pytest
from first_fakes import CountingBackend, MarkedBackend
from tiny_llm import tiny_llm_dir

import rankkit as rk
from rankkit.errors import ConfigError
from rankkit.rerankers.first import FirstReranker, window_starts
from rankkit.rerankers.first_prompt import LETTERS, parse_order

CORPUS = {f"d{i}": f"passage {i} on subject {i % 4}: " + "words " * (i % 5) for i in range(30)}


def cands(n: int) -> np.ndarray:
    return np.array([f"d{i}" for i in range(n)], dtype=object)


@pytest.fixture(scope="module")
def tiny_backend():
    from rankkit.llm.loading import load_causal_lm

    model, tok = load_causal_lm(str(tiny_llm_dir(4096)))
    return CountingBackend(model, tokenizer=tok)


def test_window_plan_ends_at_the_top():
    assert window_starts(30, 10, 5) == [(20, 30), (15, 25), (10, 20), (5, 15), (0, 10)]
    assert window_starts(25, 20, 10) == [(5, 25), (0, 15)]
    assert window_starts(3, 20, 10) == [(0, 3)]


def test_ranking_is_argsort_of_identifier_logits(tiny_backend):
    import torch

    r = FirstReranker(corpus=CORPUS, window=8, stride=4, backend=tiny_backend)
    order = r.rank_lists(["subject 2"], [cands(8)], [np.zeros(8)])[0]
    prompt = r.window_prompt("subject 2", [CORPUS[f"d{i}"] for i in range(8)])
    assert prompt.text.endswith("assistant\n[")
    ids = tiny_backend.tokenizer(prompt.text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        logits = tiny_backend.model(input_ids=ids).logits[0, -1]
    ident = [tiny_backend.tokenizer.convert_tokens_to_ids(c) for c in LETTERS[:8]]
    assert r.id_tokens == ident
    expected = np.argsort(-logits[ident].numpy(), kind="stable")
    assert order.tolist() == expected.tolist()


def test_default_runs_the_logits_path_without_generation(tiny_backend):
    calls = (tiny_backend.generate_calls, tiny_backend.logprob_calls)
    r = FirstReranker(corpus=CORPUS, backend=tiny_backend)       # defaults: logits, window 20, stride 10
    assert r.mode == "logits"
    run = rk.Run.from_sorted({"q1": (cands(25), -np.arange(25.0)), "q2": (cands(12), -np.arange(12.0))}, "bm25")
    out = r(rk.Queries({"q1": "subject 1", "q2": "subject 3"}), run)
    assert sorted(out.docids("q1").tolist()) == sorted(cands(25).tolist())
    assert tiny_backend.generate_calls == calls[0]                 # no generation happened
    assert tiny_backend.logprob_calls > calls[1]
    assert r.stats["generate_calls"] == 0 and r.stats["windows"] == 3   # q1: 2 windows, q2: 1


def test_sliding_windows_lift_the_bottom_document_to_the_top():
    corpus = dict(CORPUS, d29="RELEVANT passage")
    be = MarkedBackend()
    r = FirstReranker(corpus=corpus, window=10, stride=5, backend=be)
    order = r.rank_lists(["q"], [cands(30)], [np.zeros(30)])[0]
    assert order[0] == 29                                          # from last place into the top window
    assert order[1:].tolist() == list(range(29))                   # the rest keep their order
    assert r.stats["windows"] == 5 and be.generate_calls == 0


def test_windows_of_all_queries_are_batched_per_step():
    be = MarkedBackend()
    r = FirstReranker(corpus=CORPUS, window=10, stride=5, backend=be)
    r.rank_lists(["a", "b", "c"], [cands(30), cands(30), cands(30)], [np.zeros(30)] * 3)
    assert be.logprob_calls == 5                                   # one call per sliding step, not per window
    assert r.stats["windows"] == 15


def test_prefix_cache_scores_like_the_uncached_path(tiny_backend):
    cached = FirstReranker(corpus=CORPUS, window=6, stride=3, backend=tiny_backend)
    plain = FirstReranker(corpus=CORPUS, window=6, stride=3, backend=tiny_backend, shared_prefix=False)
    prompts = [cached.window_prompt(q, [CORPUS[f"d{i}"] for i in range(s, s + 6)])
               for q, s in (("subject 1", 0), ("another query", 5), ("x", 10))]
    a, b = cached.window_logprobs(prompts), plain.window_logprobs(prompts)
    np.testing.assert_allclose(a, b, atol=1e-4)
    lists = [cands(14), cands(9)]
    assert [o.tolist() for o in cached.rank_lists(["q1", "q2"], lists, [None, None])] == \
           [o.tolist() for o in plain.rank_lists(["q1", "q2"], lists, [None, None])]


def test_parse_order_repairs_and_counts():
    p = parse_order("B] > [B] > [Z] > [A", list("ABCD"))
    assert p.order == [1, 0, 2, 3] and (p.duplicate, p.unknown, p.missing) == (1, 1, 2)
    assert parse_order("garbage", list("AB")).order == [0, 1]
    assert parse_order("[C] > [A] > [B]", list("ABC")).order == [2, 0, 1]


def test_generate_mode_repairs_answers_and_counts_them():
    be = MarkedBackend(answer="C] > [C] > [Q] > [A")
    r = FirstReranker(corpus=CORPUS, window=4, stride=2, mode="generate", backend=be)
    order = r.rank_lists(["q"], [cands(4)], [None])[0]
    assert order.tolist() == [2, 0, 1, 3]
    assert (r.stats["duplicate_ids"], r.stats["unknown_ids"], r.stats["missing_ids"]) == (1, 1, 2)
    assert be.generate_calls == 1 and be.logprob_calls == 0


def test_generate_mode_on_the_tiny_model(tiny_backend):
    r = FirstReranker(corpus=CORPUS, window=5, stride=3, mode="generate", backend=tiny_backend)
    order = r.rank_lists(["q"], [cands(7)], [None])[0]
    assert sorted(order.tolist()) == list(range(7))               # random model: repaired to a permutation
    assert r.stats["generate_calls"] == 2


def test_identifiers_must_be_single_tokens():
    with pytest.raises(ConfigError, match="not a single token"):
        FirstReranker(corpus=CORPUS, backend=MarkedBackend(split_letters=True))


def test_short_lists_make_one_window():
    be = MarkedBackend()
    r = FirstReranker(corpus=dict(CORPUS, d2="RELEVANT"), window=20, stride=10, backend=be)
    out = r.rank_lists(["q", "q"], [cands(3), cands(1)], [None, None])
    assert out[0].tolist() == [2, 0, 1] and out[1].tolist() == [0]
    assert r.stats["windows"] == 1                                 # a single candidate needs no model call


@pytest.mark.parametrize("bad", [dict(window=1), dict(window=27), dict(stride=0), dict(stride=21),
                                 dict(mode="beam"), dict(template="other")])
def test_bad_settings(bad):
    with pytest.raises(ConfigError):
        FirstReranker(corpus=CORPUS, backend=MarkedBackend(), **bad)


def test_model_without_chat_template(tiny_backend):
    from transformers import AutoTokenizer

    from rankkit.llm.transformers_backend import TransformersBackend

    tok = AutoTokenizer.from_pretrained(tiny_llm_dir(4096))
    tok.chat_template = None
    be = TransformersBackend(tiny_backend.model, tokenizer=tok)
    with pytest.raises(ConfigError, match="no chat template"):
        FirstReranker(corpus=CORPUS, backend=be)
    r = FirstReranker(corpus=CORPUS, backend=be, template="plain", window=4, stride=2)
    assert sorted(r.rank_lists(["q"], [cands(6)], [None])[0].tolist()) == list(range(6))


def test_long_windows_are_shortened_to_fit_the_context():
    from rankkit.llm.loading import load_causal_lm

    model, tok = load_causal_lm(str(tiny_llm_dir(512)))
    be = CountingBackend(model, tokenizer=tok)
    corpus = {f"d{i}": "long passage text " * 200 for i in range(10)}
    r = FirstReranker(corpus=corpus, window=10, stride=5, backend=be, max_passage_tokens=100)
    r.rank_lists(["q"], [cands(10)], [None])
    assert r.stats["passages_truncated"] == 10 and r.stats["passages_shortened_for_context"] == 10
    assert r.stats["prompt_tokens"] <= 512


def test_missing_corpus_and_registry():
    with pytest.raises(ConfigError, match="corpus="):
        FirstReranker(backend=MarkedBackend()).rank_lists(["q"], [cands(3)], [None])
    r = rk.make_reranker("first", corpus=CORPUS, backend=MarkedBackend(), window=4, stride=2)
    assert isinstance(r, FirstReranker) and rk.FirstReranker is FirstReranker
