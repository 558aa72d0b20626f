"""A tiny BERT cross-encoder built locally (2 layers, 64-d, MiniLM tokenizer) for fast tests."""

from __future__ import annotations

from pathlib import Path


def build_tiny_bert(folder: Path, num_labels: int = 1, head: bool = False, seed: int = 0) -> Path:
    """Save a random 2-layer BertForSequenceClassification; ``head=False`` drops the classifier
    weights from the checkpoint, like a bi-encoder backbone that needs a new head."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from rankkit.models import resolve_model

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(resolve_model("minilm").location)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=128, max_position_embeddings=128, num_labels=num_labels)
    model = BertForSequenceClassification(cfg).eval()
    folder.mkdir(parents=True, exist_ok=True)
    if head:
        model.save_pretrained(folder)
    else:
        sd = {k: v for k, v in model.state_dict().items() if not k.startswith("classifier.")}
        model.save_pretrained(folder, state_dict=sd)
    tok.save_pretrained(folder)
    return folder
