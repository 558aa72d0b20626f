"""Backend.next_token_logprobs on a tiny random Llama (SmolLM2 tokenizer): batched, with and
without a shared KV prefix, equals one unpadded forward per prompt; the prefix is embedded once
per call; bad input is a clear error. Also: rankkit.llm imports without torch."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tiny_llm import tiny_llm_dir

from rankkit.errors import ConfigError
from rankkit.llm import make_backend
from rankkit.llm.openai_compat import OpenAIBackend

torch = pytest.importorskip("torch")

SYSTEM = "You rank passages. Reply with the identifier of the most relevant passage only."
USERS = ["[A] cats [B] dogs. Query: pets", "q",
         "[A] plants make sugar from light [B] quakes shake the ground [C] light is fast. "
         "Query: how do plants make food from sunlight?",
         "[A] penicillin [B] mould. Query: who found penicillin in 1928?", "[A] x [B] y"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def backend():
    return make_backend("transformers", str(tiny_llm_dir()))


def prompts_and_prefix(be):
    prompts = [be.render([{"role": "system", "content": SYSTEM}, {"role": "user", "content": u}])
               for u in USERS]
    head = prompts[0][: prompts[0].index("<|im_start|>user\n") + len("<|im_start|>user\n")]
    return prompts, head


def one_at_a_time(model, tok, prompts, cands):
    """Reference: one unpadded full forward per prompt, log-softmax of the last position."""
    out = np.zeros((len(prompts), len(cands)))
    with torch.inference_mode():
        for i, p in enumerate(prompts):
            ids = tok(p, add_special_tokens=False)["input_ids"]
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0, -1].float(), -1)
            out[i] = logp[cands].numpy()
    return out


def candidates(be):
    ids = be.token_ids(["A", "B", "C", "D"])
    assert all(len(x) == 1 for x in ids)                    # single-token identifiers
    return [x[0] for x in ids]


def test_prefix_reuse_equals_plain_batches_and_single_forwards(backend):
    prompts, head = prompts_and_prefix(backend)
    prompts = [*prompts, head]                              # a prompt that is all prefix
    tok = backend.tokenizer
    for p in prompts:                                       # the boundary tokenises cleanly here
        rest = p[len(head):]
        assert tok(p, add_special_tokens=False)["input_ids"] == \
            tok(head, add_special_tokens=False)["input_ids"] + tok(rest, add_special_tokens=False)["input_ids"]
    cands = candidates(backend)
    reference = one_at_a_time(backend.model, tok, prompts, cands)
    plain = backend.next_token_logprobs(prompts, cands, batch_size=2)
    reused = backend.next_token_logprobs(prompts, cands, batch_size=2, shared_prefix=head)
    assert plain.shape == reused.shape == (len(prompts), len(cands))
    np.testing.assert_allclose(plain, reference, atol=1e-4)
    np.testing.assert_allclose(reused, reference, atol=1e-4)
    one_batch = backend.next_token_logprobs(prompts, cands, batch_size=16, shared_prefix=head)
    np.testing.assert_allclose(one_batch, reference, atol=1e-4)
    assert backend.next_token_logprobs([], cands, batch_size=2).shape == (0, len(cands))


def test_prefix_is_embedded_once_per_call(backend):
    prompts, head = prompts_and_prefix(backend)
    tok = backend.tokenizer
    n_prefix = len(tok(head, add_special_tokens=False)["input_ids"])
    rest_lengths = sorted((len(tok(p[len(head):], add_special_tokens=False)["input_ids"]) for p in prompts),
                          reverse=True)
    seen: list[tuple[int, int]] = []
    hook = backend.model.get_input_embeddings().register_forward_pre_hook(
        lambda _mod, args: seen.append(tuple(args[0].shape)))
    try:
        backend.next_token_logprobs(prompts, candidates(backend), batch_size=2, shared_prefix=head)
    finally:
        hook.remove()
    # one prefix pass, then one pass per batch over the suffixes only (longest first, width = longest)
    batches = [(len(rest_lengths[i:i + 2]), rest_lengths[i]) for i in range(0, len(prompts), 2)]
    assert seen == [(1, n_prefix), *batches]
    assert len(seen) == 1 + math.ceil(len(prompts) / 2)


def test_bad_input_is_a_clear_error(backend):
    prompts, head = prompts_and_prefix(backend)
    cands = candidates(backend)
    with pytest.raises(ConfigError, match="prompt 1 does not start with shared_prefix"):
        backend.next_token_logprobs([prompts[0], "no template here"], cands, 2, shared_prefix=head)
    with pytest.raises(ConfigError, match="outside the vocabulary"):
        backend.next_token_logprobs(prompts, [cands[0], 10**9], 2)
    with pytest.raises(ConfigError, match="non-empty list"):
        backend.next_token_logprobs(prompts, [], 2)
    with pytest.raises(ConfigError, match="must be integers"):
        backend.next_token_logprobs(prompts, ["A"], 2)


def test_http_backend_says_which_backends_can():
    be = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError, match="backend='transformers' or backend='vllm'"):
        be.next_token_logprobs(["p"], [1], 1)
    with pytest.raises(ConfigError, match="transformers, vllm"):
        be.token_ids(["A"])


def test_llm_package_imports_without_torch():
    code = ("import sys, rankkit.llm, rankkit.llm.transformers_backend, rankkit.llm.next_token, "
            "rankkit.llm.vllm, rankkit.llm.openai_compat, rankkit.generators.generator; "
            "print([m for m in ('torch', 'transformers', 'vllm') if m in sys.modules])")
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=root)
    assert out.stdout.strip() == "[]"
