"""Stand-ins for FIRST tests: a deterministic backend that prefers a marked passage, a call-counting real one."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from rankkit.llm.backends import Backend, Generation
from rankkit.llm.transformers_backend import TransformersBackend


class MarkedBackend(Backend):
    """Reads each window prompt: the passage containing ``RELEVANT`` gets log-prob 0, the others
    -5 minus a little per position (so they keep their order). Tokens are characters.

    ``split_letters=True`` makes every identifier two tokens (for the single-token check);
    ``answer`` is what ``generate`` returns for every prompt.
    """

    name = "marked"

    def __init__(self, split_letters: bool = False, answer: str = "A]"):
        self.split_letters, self.answer = split_letters, answer
        self.generate_calls = self.logprob_calls = 0

    def render(self, messages):
        return "\n".join(f"<{m['role']}>{m['content']}" for m in messages) + "\n<assistant>"

    def count_tokens(self, texts):
        return [len(t) for t in texts]

    def truncate(self, text, n_tokens):
        return text[:n_tokens]

    def token_ids(self, texts):
        out = []
        for t in texts:
            ids = []
            for c in t:
                ids += [ord(c), 1000 + ord(c)] if self.split_letters and c.isalpha() else [ord(c)]
            out.append(ids)
        return out

    def next_token_logprobs(self, prompts: Sequence[str], candidate_ids, batch_size, shared_prefix=None,
                            progress=False):
        self.logprob_calls += 1
        out = np.full((len(prompts), len(candidate_ids)), -50.0, dtype=np.float32)
        for r, p in enumerate(prompts):
            labels = re.findall(r"^\[([A-Z])\] (.*)$", p, flags=re.M)
            for k, (letter, text) in enumerate(labels):
                col = list(candidate_ids).index(ord(letter))
                out[r, col] = 0.0 if "RELEVANT" in text else -5.0 - 0.01 * k
        return out

    def generate(self, prompts, messages, max_new_tokens, batch_size, progress=False, **kw):
        self.generate_calls += 1
        return [Generation(self.answer) for _ in prompts]


class CountingBackend(TransformersBackend):
    """The real transformers backend, counting its generate and next-token calls."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.generate_calls = self.logprob_calls = 0

    def generate(self, *a, **kw):
        self.generate_calls += 1
        return super().generate(*a, **kw)

    def next_token_logprobs(self, *a, **kw):
        self.logprob_calls += 1
        return super().next_token_logprobs(*a, **kw)
