"""The shared LLM runtime: one interface over transformers, vLLM and OpenAI-compatible servers.

Every LLM consumer (the :class:`~rankkit.generators.generator.Generator` stage,
LLM rerankers) talks to a :class:`Backend` and never to a runtime directly::

    from rankkit.llm import make_backend
    be = make_backend("transformers", "smollm2")            # or "vllm", "openai", an instance
    prompt = be.render([{"role": "user", "content": "..."}])
    be.generate([prompt], [msgs], max_new_tokens=64, batch_size=8)      # -> [Generation]
    be.score_labels([prompt], ["yes", "no"], batch_size=8)             # -> ([N, L], errors)
    ids = [i[0] for i in be.token_ids(["A", "B", "C"])]                 # single-token ids
    be.next_token_logprobs(prompts, ids, batch_size=8, shared_prefix=head)   # -> [N, C]

Adding a backend (the seam):

1. Write one class in a new module ``rankkit/llm/<name>.py`` subclassing
   :class:`rankkit.llm.backends.Backend`. It implements ``render`` (chat
   messages -> prompt text), ``count_tokens``, ``truncate``, ``generate`` and
   ``score_labels``; optionally ``load``, ``context_window``, ``describe``, and
   for list-level rerankers ``token_ids`` and ``next_token_logprobs`` (the base
   class raises a ``ConfigError`` naming the backends that have them).
   Import the runtime inside the class, never at module level.
2. Add one line to :data:`rankkit.llm.backends.BACKENDS`: ``"<name>": "rankkit.llm.<name>:<Class>"``.

Modules: :mod:`~rankkit.llm.backends` (interface, registry),
:mod:`~rankkit.llm.loading` (``load_causal_lm``: one cached copy of each local
model; chat rendering), :mod:`~rankkit.llm.transformers_backend`,
:mod:`~rankkit.llm.next_token` (batched next-token log-probs over a shared KV
prefix), :mod:`~rankkit.llm.vllm`, :mod:`~rankkit.llm.openai_compat`.
Importing this package loads neither torch nor transformers.
"""

from __future__ import annotations

from .backends import BACKENDS, Backend, Generation, Messages, make_backend
from .loading import chat_prompt, clear_model_cache, load_causal_lm, prepare_tokenizer, render_plain

__all__ = ["BACKENDS", "Backend", "Generation", "Messages", "chat_prompt", "clear_model_cache",
           "load_causal_lm", "make_backend", "prepare_tokenizer", "render_plain"]
