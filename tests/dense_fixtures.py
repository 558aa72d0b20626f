"""Fixtures for the dense-retrieval tests: MiniLM on the demo corpus, and a tiny local model.

The tiny model (one 32-wide BERT layer with random weights, MiniLM's
tokenizer, mean pooling, no Normalize module, a 64-token window) loads in a
blink, differs from MiniLM, and exercises the paths MiniLM does not:
normalisation done by rankkit, truncation of long texts, loading by path.

Test modules import the ``fixture_*`` functions; the fixtures are used by their
``name=`` (the function names differ so linters see no shadowing).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def fixture_few_threads() -> None:
    """The test machine's CPU is shared: one torch thread is plenty for these sizes."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session", name="minilm_encoder")
def fixture_minilm_encoder():
    from rankkit.retrievers.encoder import SentenceEncoder

    return SentenceEncoder("minilm")


@pytest.fixture(scope="session", name="dense_demo")
def fixture_dense_demo(demo, minilm_encoder):
    import rankkit as rk

    return rk.DenseRetriever.build(demo.corpus, model=minilm_encoder)


@pytest.fixture(scope="session", name="tiny_model")
def fixture_tiny_model(tmp_path_factory) -> Path:
    """A folder holding a tiny sentence-transformers model (random weights, seeded)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    from rankkit.models import resolve_model

    root = tmp_path_factory.mktemp("tiny-model")
    hf = root / "hf"
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("minilm").location)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(hf)
    tokenizer.save_pretrained(hf)
    model = SentenceTransformer(modules=[Transformer(str(hf), max_seq_length=64), Pooling(32, "mean")])
    out = root / "st"
    model.save(str(out))
    return out
