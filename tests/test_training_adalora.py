"""AdaLoRA: its orthogonal regulariser is in the training loss (the value peft itself would add),
and ranks are reallocated during a short run, with the reallocated adapter reloading exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from test_rerank_training import _groups  # noqa: E402
from tiny_models import build_tiny_bert  # noqa: E402

from rankkit.training.adapters import ADAPTERS  # noqa: E402
from rankkit.training.objectives import ListwiseObjective  # noqa: E402

QUERIES = ["what is beta", "what is gamma", "a b"]
DOCS = ["beta is a letter", "cats", "unrelated text about rivers"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "base")


def _adalora(base, **options):
    from rankkit.training.peft import add_adapter, load_base

    torch.manual_seed(0)
    net, tok, new = load_base(base)
    model = add_adapter(net, "adalora", {"init_r": 4, "target_r": 2, **options}, new, total_steps=10)
    return model.eval(), tok


def _orth_reg(model) -> torch.Tensor:
    """Mean ||A A^T - I||_F / ||B^T B - I||_F over the adapter matrices, written out by hand."""
    terms = []
    for n, p in model.named_parameters():
        if "lora_A" in n or "lora_B" in n:
            cov = p @ p.T if "lora_A" in n else p.T @ p
            terms.append(torch.linalg.matrix_norm(cov - torch.eye(cov.shape[0])))
    return torch.stack(terms).mean()


def test_regulariser_is_what_peft_adds(base):
    model, tok = _adalora(base, orth_reg_weight=0.3)
    enc = tok(QUERIES, DOCS, padding=True, return_tensors="pt")
    y = torch.tensor([1.0, 0.0, 0.5])
    with torch.no_grad():
        out = model(**enc, labels=y)                      # peft adds the term to the model's own loss
        peft_term = out.loss - torch.nn.functional.mse_loss(out.logits.squeeze(-1), y)
        hook = ADAPTERS["adalora"].regularizer(model)
    assert hook.item() > 0
    assert hook.item() == pytest.approx(peft_term.item(), rel=1e-5)
    assert hook.item() == pytest.approx(0.3 * _orth_reg(model).item(), rel=1e-5)


def test_regulariser_is_in_the_training_loss(base, tmp_path):
    from transformers import TrainingArguments

    from rankkit.training.trainer import _trainer_class

    model, tok = _adalora(base, orth_reg_weight=0.3)
    objective = ListwiseObjective()
    objective.setup(tok, 32)
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[], remove_unused_columns=False)
    spec = ADAPTERS["adalora"]
    trainer = _trainer_class()(model=model, args=args, objective=objective, regularizer=spec.regularizer,
                               data_collator=objective.collate)
    batch = objective.collate(_groups()[:2])
    with torch.no_grad():
        with_hook = trainer.compute_loss(model, dict(batch))
        without, _ = objective.compute_loss(model, dict(batch))
    reg = _orth_reg(model)
    assert reg.item() > 0
    assert (with_hook - without).item() == pytest.approx(0.3 * reg.item(), rel=1e-5)


class _Capture(ListwiseObjective):
    """The listwise objective, keeping the trained in-memory model's scores and lora_E."""

    def save(self, model, tokenizer, folder, **manifest):
        enc = tokenizer(QUERIES, DOCS, padding=True, return_tensors="pt")
        with torch.inference_mode():
            self.scores_before_save = model(**enc).logits[:, 0].numpy()
        self.nonzero_e = sum(int((p != 0).sum()) for n, p in model.named_parameters() if "lora_E" in n)
        self.modules = sum(1 for n, _ in model.named_parameters() if "lora_E" in n)
        return super().save(model, tokenizer, folder, **manifest)


def test_ranks_are_reallocated_in_a_short_run_and_reload(base, tmp_path):
    from rankkit.folders import load_reranker
    from rankkit.training.trainer import TrainOptions, train

    objective = _Capture(loss="softmax_ce")
    opts = TrainOptions(steps=6, batch_size=2, group_size=3, lr=5e-3, seed=3, logging_steps=1, threads=1,
                        warmup_ratio=0.0)
    res = train(_groups(), str(base), tmp_path / "ada", method="adalora", objective=objective, max_length=32,
                adapter_options={"init_r": 4, "target_r": 1, "tinit": 1, "tfinal": 2, "deltaT": 1},
                options=opts)
    assert res.steps == 6
    config = json.loads((res.folder / "adapter_config.json").read_text())
    pattern = config["rank_pattern"]
    assert pattern, "AdaLoRA never reallocated ranks"
    kept = sum(sum(bool(x) for x in mask) for mask in pattern.values())
    initial = 4 * objective.modules
    assert len(pattern) == objective.modules and 0 < kept < initial   # the budget shrank
    assert 0 < objective.nonzero_e <= kept                             # pruned singular values are zero
    model, tok, _ = load_reranker(res.folder)
    enc = tok(QUERIES, DOCS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        reloaded = model(**enc).logits[:, 0].numpy()
    np.testing.assert_allclose(reloaded, objective.scores_before_save, atol=1e-5, rtol=0)
