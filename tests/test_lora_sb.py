"""LoRA-SB: the initial adapter product B R A is the truncated SVD of the estimated first full
update (computed here by hand on a tiny model); only R (r x r per layer) and the head train;
a short run through the trainer saves, reloads and merges to the same scores."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from test_adapters import tiny_groups, tiny_init_data  # noqa: E402
from tiny_models import build_tiny_bert  # noqa: E402

R = 3
TARGETS = ["query", "value", "dense"]
LR = 2e-3
#: 2 blocks x (query, value, attention/intermediate/output dense) + the pooler dense
LAYERS = 11


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "base")


def _no_dropout(net):
    for m in net.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return net


def _hand_update(base, estimate):
    """-lr * sign(mean gradient) (or -lr * mean gradient) of the listwise loss, by plain autograd."""
    from rankkit.training.peft import load_base

    torch.manual_seed(2)
    net, tok, _ = load_base(base)
    _no_dropout(net).train()
    data = tiny_init_data(tok, lr=LR)
    batches = data.batches(2)
    for batch in batches:
        data.loss(net, batch).backward()
    out = {}
    for name, mod in net.named_modules():
        if isinstance(mod, torch.nn.Linear) and name.rsplit(".", 1)[-1] in TARGETS:
            g = mod.weight.grad / len(batches)
            out[name] = -LR * (torch.sign(g) if estimate == "adam" else g)
    return out


def _lora_sb(base, **options):
    from rankkit.training.peft import add_adapter, load_base

    torch.manual_seed(2)                     # the same random head as _hand_update
    net, tok, new = load_base(base)
    _no_dropout(net)
    opts = {"r": R, "target_modules": TARGETS, "init_batches": 2, "init_lr": LR, **options}
    return add_adapter(net, "lora_sb", opts, new, data=tiny_init_data(tok, lr=LR)), tok


@pytest.mark.parametrize("estimate", ["adam", "sgd"])
def test_initial_product_is_truncated_svd_of_the_update(base, estimate):
    from rankkit.training.lora_sb import tinylora_layers

    updates = _hand_update(base, estimate)
    model, _ = _lora_sb(base, estimate=estimate)
    layers = tinylora_layers(model)
    assert set(layers) == set(updates) and len(layers) == LAYERS
    for name, layer in layers.items():
        U, S, Vh = torch.linalg.svd(updates[name].double(), full_matrices=False)
        best = (U[:, :R] * S[:R]) @ Vh[:R]                             # Eckart-Young: best rank-R
        delta = layer.get_delta_weight("default").detach().double()
        scale = float(best.abs().max())
        assert scale > 0
        np.testing.assert_allclose(delta.numpy(), best.numpy(), atol=1e-4 * scale, rtol=0)
        # B and A are orthonormal (the SVD's U_r, V_r), R is diag(S_r): no scaling hyperparameter
        B, A = layer.tinylora_B["default"].double(), layer.tinylora_A["default"].double()
        np.testing.assert_allclose((B.T @ B).numpy(), np.eye(R), atol=1e-5)
        np.testing.assert_allclose((A @ A.T).numpy(), np.eye(R), atol=1e-5)


def test_only_r_and_the_head_train(base):
    from rankkit.training.peft import count_parameters

    model, _ = _lora_sb(base)
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    latent = sum(v for n, v in trainable.items() if "tinylora_v" in n)
    head = sum(v for n, v in trainable.items() if "classifier" in n)
    assert latent == LAYERS * R * R and head == 64 + 1
    assert count_parameters(model)[0] == latent + head


def test_adam_estimate_is_adamws_first_full_step(base):
    """The default estimate is the update a first AdamW step of full fine-tuning takes."""
    from rankkit.training.peft import load_base

    updates = _hand_update(base, "adam")
    torch.manual_seed(2)
    net, tok, _ = load_base(base)
    _no_dropout(net).train()
    data = tiny_init_data(tok, lr=LR)
    batches = data.batches(2)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    opt = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=0.0, eps=1e-12)
    for batch in batches:
        (data.loss(net, batch) / len(batches)).backward()
    opt.step()
    for name, update in updates.items():
        step = net.get_parameter(f"{name}.weight").detach() - before[f"{name}.weight"]
        step, update = step.numpy(), update.numpy()
        assert (np.sign(step) == np.sign(update)).all()
        # Adam's first step is lr * g / (|g| + eps): lr * sign(g) except where |g| is near eps
        assert np.mean(np.isclose(step, update, rtol=0, atol=1e-3 * LR)) > 0.99


def test_short_run_saves_reloads_and_merges(base, tmp_path):
    import rankkit as rk
    from rankkit.folders import load_reranker, merge
    from rankkit.training.trainer import TrainOptions, train

    opts = TrainOptions(steps=3, batch_size=2, group_size=3, lr=5e-3, seed=1, logging_steps=1, threads=1,
                        warmup_ratio=0.0)
    res = train(tiny_groups(), str(base), tmp_path / "sb", method="lora_sb", max_length=32, options=opts,
                adapter_options={"r": 2, "target_modules": TARGETS, "init_batches": 2})
    manifest = json.loads((res.folder / "rankkit.json").read_text())
    assert manifest["method"] == "lora_sb" and res.trainable == LAYERS * 4 + 65
    model, tok, _ = load_reranker(res.folder)
    q, d = ["what is beta", "what is gamma"], ["beta is a letter", "cats"]
    enc = tok(q, d, padding=True, return_tensors="pt")
    with torch.inference_mode():
        loaded = model(**enc).logits[:, 0].numpy()
    ce = rk.CrossEncoder(merge(res.folder, tmp_path / "merged"), show_progress=False)
    np.testing.assert_allclose(ce.predict(q, d), loaded, atol=1e-4, rtol=0)
