"""Adapters: save -> load gives identical scores for every method; merged == unmerged;
the scoring head is never random after reload; bad folders fail clearly."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from tiny_models import build_tiny_bert  # noqa: E402

from rankkit.errors import ConfigError, MissingResourceError, RankkitError  # noqa: E402
from rankkit.training.adapters import ADAPTERS  # noqa: E402

QUERIES = ["aspirin lowers the risk of heart attack", "vitamin d deficiency", "a b"]
DOCS = ["Daily aspirin reduces myocardial infarction in adults. " * 3, "Vitamin D levels were low.",
        "unrelated text about bicycles and rivers"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "base")


def _trained(base, method):
    """An adapter model whose trainable weights (adapter + head) moved away from their init."""
    from test_adapters import FAST, tiny_init_data

    from rankkit.training.peft import add_adapter, load_base

    torch.manual_seed(1)
    net, tok, new = load_base(base)
    model = add_adapter(net, method, FAST.get(method), new, total_steps=10, data=tiny_init_data(tok))
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    return model.eval(), tok


def _scores(model, tok):
    enc = tok(QUERIES, DOCS, truncation="only_second", max_length=32, padding=True, return_tensors="pt")
    with torch.inference_mode():
        return model(**enc).logits[:, 0].float().numpy()


# every registered method for sequence classifiers (the tiny BERT here)
@pytest.mark.parametrize("method", sorted(m for m, a in ADAPTERS.items() if a.task_type in (None, "SEQ_CLS")))
def test_save_load_identical_and_merge(base, tmp_path, method):
    from rankkit.folders import load_reranker, merge, save_reranker
    from rankkit.rerankers.cross_encoder import CrossEncoder

    model, tok = _trained(base, method)
    before = _scores(model, tok)
    folder = save_reranker(model, tok, tmp_path / "ad", base_model=str(base), method=method, max_length=32)
    manifest = json.loads((folder / "rankkit.json").read_text())
    assert manifest["method"] == method
    loaded, tok2, _ = load_reranker(folder)
    np.testing.assert_allclose(_scores(loaded, tok2), before, atol=1e-5, rtol=0)
    ce = CrossEncoder(folder, show_progress=False)           # merged on load
    np.testing.assert_allclose(ce.predict(QUERIES, DOCS), before, atol=1e-4, rtol=0)
    if ADAPTERS[method].config is not None:
        merged = merge(folder, tmp_path / "merged")
        assert not (merged / "adapter_config.json").exists()
        ce2 = CrossEncoder(merged, show_progress=False)
        np.testing.assert_allclose(ce2.predict(QUERIES, DOCS), before, atol=1e-4, rtol=0)


def test_head_is_trained_and_saved(base):
    from rankkit.training.peft import add_adapter, load_base

    net, _, new = load_base(base)
    assert new == {"classifier"}                               # the checkpoint had no head
    model = add_adapter(net, "lora", None, new)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("classifier" in n for n in names)


def test_adapter_without_head_refuses_to_load(base, tmp_path):
    from safetensors.torch import load_file, save_file

    from rankkit.folders import load_reranker, save_reranker

    model, tok = _trained(base, "lora")
    folder = save_reranker(model, tok, tmp_path / "ad", base_model=str(base), method="lora")
    f = folder / "adapter_model.safetensors"
    sd = {k: v for k, v in load_file(str(f)).items() if "classifier" not in k}
    save_file(sd, str(f))
    with pytest.raises(RankkitError, match="random scoring head"):
        load_reranker(folder)


def test_missing_base_model_is_named(base, tmp_path):
    from rankkit.folders import load_reranker, save_reranker

    model, tok = _trained(base, "lora")
    folder = save_reranker(model, tok, tmp_path / "ad", base_model=str(tmp_path / "gone"), method="lora")
    with pytest.raises(MissingResourceError, match="base model"):
        load_reranker(folder)


def test_unknown_adapter_and_bad_option(base):
    from rankkit.training.peft import add_adapter, load_base

    net, _, new = load_base(base)
    with pytest.raises(ConfigError, match="unknown adapter method 'lorax'"):
        add_adapter(net, "lorax", None, new)
    with pytest.raises(ConfigError, match="bad option"):
        add_adapter(net, "lora", {"rank": 4}, new)


def test_lora_trains_under_5_percent_of_minilm():
    from rankkit.training.peft import add_adapter, count_parameters, load_base

    net, _, new = load_base("minilm")
    model = add_adapter(net, "lora", {"r": 16, "target_modules": ["query", "key", "value", "dense"]}, new)
    trainable, total = count_parameters(model)
    assert trainable / total <= 0.05
