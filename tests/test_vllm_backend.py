"""The vLLM backend: a clear error without vLLM, and its glue code against a stand-in engine
(vLLM itself needs a CUDA GPU, which the test machines do not have)."""

from __future__ import annotations

import importlib.util
import sys
import types
from dataclasses import dataclass

import numpy as np
import pytest

import rankkit as rk
from rankkit.errors import MissingResourceError


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_missing_vllm_is_a_clear_error():
    with pytest.raises(MissingResourceError, match="pip install vllm"):
        rk.Generator("smollm2", backend="vllm")


class CharTokenizer:
    """One token per character (ids = code points); no chat template."""

    chat_template = None

    def encode(self, text, add_special_tokens=True):
        return [ord(c) for c in text]

    def decode(self, ids):
        return "".join(map(chr, ids))


@dataclass
class Logprob:
    logprob: float


class FakeLLM:
    """Records calls; every prompt token costs -0.5 except 'B' tokens (-0.1)."""

    def __init__(self, model, **options):
        self.model, self.options, self.calls = model, options, []
        self.llm_engine = types.SimpleNamespace(model_config=types.SimpleNamespace(max_model_len=4096))

    def get_tokenizer(self):
        return CharTokenizer()

    def generate(self, inputs, params, use_tqdm=False):
        self.calls.append((inputs, params))
        outs = []
        for inp in inputs:
            ids = inp["prompt_token_ids"]
            text = f"echo {len(ids)} [1]"
            plp = [None] + [{t: Logprob(-0.1 if t == ord("B") else -0.5)} for t in ids[1:]]
            outs.append(types.SimpleNamespace(
                outputs=[types.SimpleNamespace(text=text, token_ids=list(range(3)))],
                prompt_logprobs=plp))
        return outs


@pytest.fixture()
def fake_vllm(monkeypatch):
    mod = types.ModuleType("vllm")
    mod.LLM = FakeLLM
    mod.SamplingParams = lambda **kw: kw
    monkeypatch.setitem(sys.modules, "vllm", mod)
    return mod


def test_vllm_glue_generates_and_scores_labels(fake_vllm, tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    corpus = rk.Corpus(["d1"], ["text"])
    run = rk.Run({"q": (["d1"], [1.0])})
    gen = rk.Generator(str(model_dir), backend="vllm", corpus=corpus, max_new_tokens=7,
                       show_progress=False, gpu_memory_utilization=0.5)
    a = gen(rk.Queries({"q": "claim"}), run).answers["q"]
    llm = gen.backend.llm
    assert llm.model == str(model_dir) and llm.options["gpu_memory_utilization"] == 0.5
    inputs, params = llm.calls[-1]
    assert params == {"temperature": 0.0, "max_tokens": 7}
    assert inputs[0]["prompt_token_ids"] == [ord(c) for c in a.prompt]
    assert a.text == f"echo {len(a.prompt)} [1]" and a.citations == ["d1"]

    clf = rk.Generator(str(model_dir), backend="vllm", corpus=corpus, mode="classify",
                       labels=["AB", "BBB"], show_progress=False)
    b = clf(rk.Queries({"q": "claim"}), run).answers["q"]
    # label tokens after the prompt: AB -> -0.5 - 0.1; BBB -> 3 * -0.1
    assert b.label_scores == pytest.approx({"AB": -0.6, "BBB": -0.3}) and b.label == "BBB"
    inputs, params = clf.backend.llm.calls[-1]
    assert params["prompt_logprobs"] == 0 and len(inputs) == 2


def test_vllm_next_token_logprobs_reads_each_candidate_after_the_prompt(fake_vllm, tmp_path):
    from rankkit.errors import ConfigError
    from rankkit.llm import make_backend

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    be = make_backend("vllm", str(model_dir))
    assert be.token_ids(["B", "CD"]) == [[ord("B")], [ord("C"), ord("D")]]
    cands = [ord("B"), ord("C")]
    scores = be.next_token_logprobs(["head: x", "head: yy"], cands, batch_size=4, shared_prefix="head: ")
    # the fake engine gives 'B' tokens -0.1 and every other token -0.5
    np.testing.assert_allclose(scores, [[-0.1, -0.5], [-0.1, -0.5]])
    inputs, params = be.llm.calls[-1]
    assert params["prompt_logprobs"] == 0 and params["max_tokens"] == 1
    assert [i["prompt_token_ids"] for i in inputs[:2]] == [[ord(c) for c in "head: x"] + [c] for c in cands]
    with pytest.raises(ConfigError, match="prompt 0 does not start with shared_prefix"):
        be.next_token_logprobs(["other"], cands, batch_size=4, shared_prefix="head: ")
