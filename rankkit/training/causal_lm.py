"""A private, trainable copy of a causal LM: shared by the LLM trainers (Rank-R1, generator SFT)."""

from __future__ import annotations

import copy
import os
from typing import Any


def private_causal_lm(base_model: str | os.PathLike) -> tuple[Any, Any]:
    """(model, tokenizer) copied from the shared cache, ready to train and ``save_pretrained``.

    Training changes weights, so the cached copy other stages use is never
    touched (a deep copy is cheaper than a GGUF reload); the tokenizer is
    copied too, since trainers change its padding settings. A GGUF model's
    quantization flag is removed (its weights are already dequantised), else
    ``save_pretrained`` and peft refuse it.
    """
    from ..llm.loading import load_causal_lm

    shared, tok = load_causal_lm(base_model)
    model, tok = copy.deepcopy(shared), copy.deepcopy(tok)
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    return model, tok


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())
