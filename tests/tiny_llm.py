"""A tiny random Llama with the real SmolLM2 tokenizer and chat template, built once per session.

Fast enough for default tests (two layers, 32 hidden units) while going through
the same loader, chat template, padding and generation code as SmolLM2 itself.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

_CACHE: dict[str, Path] = {}


def tiny_llm_dir(max_positions: int = 512) -> Path:
    """Folder with a random 2-layer LlamaForCausalLM + the SmolLM2 tokenizer (skips if absent)."""
    key = f"tiny-{max_positions}"
    if key in _CACHE:
        return _CACHE[key]
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from rankkit.errors import MissingResourceError
    from rankkit.models import resolve_model

    try:
        ref = resolve_model("smollm2")
    except MissingResourceError as e:
        pytest.skip(f"SmolLM2 tokenizer not available: {e}")
    if "tokenizer" not in _CACHE:
        tok = AutoTokenizer.from_pretrained(ref.location, gguf_file=ref.gguf_file)
        tdir = Path(tempfile.mkdtemp(prefix="rankkit-smollm2-tok-"))
        tok.save_pretrained(tdir)
        _CACHE["tokenizer"] = tdir
    tok = AutoTokenizer.from_pretrained(_CACHE["tokenizer"])
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, tie_word_embeddings=True, initializer_range=0.5)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    out = Path(tempfile.mkdtemp(prefix=f"rankkit-{key}-"))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    _CACHE[key] = out
    return out
