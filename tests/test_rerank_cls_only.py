"""The [CLS]-only last layer gives the logits of the full forward pass, and is undone on exit."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from rankkit.rerankers.cls_only import cls_only_last_layer, supports_cls_only  # noqa: E402

ARCHS = [("BertForSequenceClassification", "BertConfig"),
         ("RobertaForSequenceClassification", "RobertaConfig"),
         ("ElectraForSequenceClassification", "ElectraConfig")]


def _tiny(model_cls: str, config_cls: str, attn: str, num_labels: int = 1):
    cfg = getattr(transformers, config_cls)(vocab_size=100, hidden_size=64, num_hidden_layers=3,
                                            num_attention_heads=4, intermediate_size=128,
                                            num_labels=num_labels, pad_token_id=1)
    cfg._attn_implementation = attn
    torch.manual_seed(0)
    return getattr(transformers, model_cls)(cfg).eval()


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("arch", ARCHS, ids=[a[0] for a in ARCHS])
def test_same_logits_as_the_full_forward(arch, attn):
    model = _tiny(*arch, attn=attn, num_labels=2)
    ids = torch.randint(5, 100, (4, 20))
    mask = torch.ones_like(ids)
    mask[1, 12:] = 0
    mask[3, 5:] = 0
    keys = list(model.state_dict())
    with torch.inference_mode():
        full = model(input_ids=ids, attention_mask=mask).logits
        with cls_only_last_layer(model) as on:
            short = model(input_ids=ids, attention_mask=mask).logits
            assert type(model.base_model.encoder.layer[-1]).__name__ == "ClsOnlyLayer"
    assert on
    torch.testing.assert_close(short, full, atol=1e-5, rtol=0)
    assert list(model.state_dict()) == keys  # the original layer is back


def test_not_used_when_training_or_for_other_heads():
    model = _tiny(*ARCHS[0], attn="sdpa")
    model.train()
    with cls_only_last_layer(model) as on:
        assert not on
    model.eval()
    with cls_only_last_layer(model, enabled=False) as on:
        assert not on
    cfg = transformers.BertConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=128)
    token_head = transformers.BertForTokenClassification(cfg).eval()  # reads every position
    assert not supports_cls_only(token_head)
    with cls_only_last_layer(token_head) as on:
        assert not on
