"""The training seams: a toy objective, a toy adapter method and a toy data source, each
registered from this file with one call (no edit under rankkit/), train and reload;
per-item weights reach the listwise loss."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from tiny_models import build_tiny_bert  # noqa: E402

from rankkit.errors import ConfigError  # noqa: E402
from rankkit.training.adapters import AdapterMethod, register_adapter  # noqa: E402
from rankkit.training.data import Group  # noqa: E402
from rankkit.training.objectives import Objective, register_objective  # noqa: E402
from rankkit.training.sources import register_data_source  # noqa: E402

QUERIES = ["what is beta", "what is gamma"]
DOCS = ["beta is a letter", "cats"]


class PointwiseMSE(Objective):
    """Toy objective: every (query, doc) pair on its own, mean squared error against the label."""

    saved: dict[str, np.ndarray] = {}

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.scale = float(scale)
        self.options = {"scale": self.scale}

    def collate(self, examples):
        pairs = [(g.query, d, y) for g in examples for d, y in zip(g.docs, g.labels)]
        enc = self.tokenizer([p[0] for p in pairs], [p[1] for p in pairs], truncation="only_second",
                             max_length=self.max_length, padding=True, return_tensors="pt")
        return {**enc, "targets": torch.tensor([p[2] for p in pairs]) * self.scale}

    def compute_loss(self, model, batch):
        out = model(**{k: v for k, v in batch.items() if k != "targets"})
        return torch.nn.functional.mse_loss(out.logits[:, 0], batch["targets"]), out

    def save(self, model, tokenizer, folder, **manifest):
        PointwiseMSE.saved[str(folder)] = _scores(model, tokenizer)
        return super().save(model, tokenizer, folder, **manifest)


def _toy_groups(spec, cfg):
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma"][: int(spec.get("n", 6))]
    groups = [Group(f"what is {w}", [f"{w} is a letter", f"cats {i}"], [1.0, 0.0], qid=str(i))
              for i, w in enumerate(words)]
    return groups, {"source": "toy", "groups": len(groups)}


register_objective("toy_mse", PointwiseMSE)
register_adapter("lora_query", AdapterMethod("LoraConfig", {"r": 4, "lora_alpha": 8, "target_modules": ["query"]},
                                             "LoRA on the query projections only"))
register_data_source("toy", _toy_groups, {"n"})
register_adapter("lm_only", AdapterMethod("LoraConfig", {"r": 4}, "LoRA for causal LMs", task_type="CAUSAL_LM"))


def _scores(model, tok) -> np.ndarray:
    enc = tok(QUERIES, DOCS, truncation="only_second", max_length=32, padding=True, return_tensors="pt")
    with torch.inference_mode():
        return model.eval()(**enc).logits[:, 0].float().numpy()


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "base")


def _config(tmp_path, base, **over) -> str:
    import yaml

    cfg = {"base_model": str(base), "output_dir": str(tmp_path / "model"), "max_length": 32,
           "adapter": {"method": "lora_query"}, "objective": {"name": "toy_mse", "options": {"scale": 2.0}},
           "data": [{"source": "toy", "n": 4}],
           "train": {"steps": 3, "batch_size": 2, "lr": 1e-3, "threads": 1, "logging_steps": 1}}
    cfg.update(over)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_toy_objective_adapter_and_source_train_and_reload(base, tmp_path):
    from safetensors import safe_open

    from rankkit.folders import load_reranker
    from rankkit.training.config import load_config, run_config

    res = run_config(load_config(_config(tmp_path, base)))
    assert res.steps == 3 and np.isfinite(res.final_loss)
    folder = tmp_path / "model"
    manifest = json.loads((folder / "rankkit.json").read_text())
    assert manifest["method"] == "lora_query"
    assert manifest["training"]["objective"] == {"name": "toy_mse", "options": {"scale": 2.0}}
    assert manifest["training"]["data"]["sources"] == [{"source": "toy", "groups": 4}]
    assert json.loads((folder / "adapter_config.json").read_text())["target_modules"] == ["query"]
    with safe_open(str(folder / "adapter_model.safetensors"), "pt") as fh:
        lora = [k for k in fh.keys() if "lora_" in k]
    assert lora and all(".query." in k for k in lora)
    model, tok, _ = load_reranker(folder)
    np.testing.assert_allclose(_scores(model, tok), PointwiseMSE.saved[str(folder)], atol=1e-5, rtol=0)


@pytest.mark.parametrize("over,message", [
    ({"objective": {"name": "nope"}}, "unknown objective 'nope'"),
    ({"objective": {"name": "toy_mse", "options": {"scale": 1, "temperature": 2}}}, "temperature"),
    ({"loss": {"name": "ranknet"}}, "takes no loss"),
    ({"objective": {"name": "listwise", "options": {"loss": "hinge"}}}, "unknown loss 'hinge'"),
    ({"data": [{"source": "toy", "m": 1}]}, "unknown key(s) ['m']"),
    ({"data": [{"source": "sessions"}]}, "must be one of"),
    ({"adapter": {"method": "lm_only"}}, "is for CAUSAL_LM models, but the objective trains SEQ_CLS"),
])
def test_config_checks_the_registries_before_loading(base, tmp_path, over, message):
    from rankkit.training.config import load_config

    with pytest.raises(ConfigError) as e:
        load_config(_config(tmp_path, base, base_model=str(tmp_path / "no-such-model"), **over))
    assert message in str(e.value)


def test_weights_reach_the_loss_exactly(base):
    from rankkit.folders import load_base
    from rankkit.training.losses import LOSSES
    from rankkit.training.objectives import ListwiseObjective

    net, tok, _ = load_base(base)
    net.eval()
    groups = [Group("q one", ["a b", "c d", "e f"], [1.0, 0.0, 0.0], qid="1", weights=[2.0, 0.5, 1.0]),
              Group("q two", ["g h", "i j"], [0.0, 1.0], qid="2")]
    for name in ("softmax_ce", "lambdaloss", "ranknet"):
        obj = ListwiseObjective(loss=name)
        obj.setup(tok, 32)
        batch = obj.collate(groups)
        expected_w = torch.tensor([[2.0, 0.5, 1.0], [1.0, 1.0, 1.0]])
        torch.testing.assert_close(batch["weights"], expected_w)
        with torch.no_grad():
            loss, _ = obj.compute_loss(net, batch)
            scores, _ = obj.scores(net, batch)
            want = LOSSES[name](scores, batch["labels"], batch["group_mask"], weights=expected_w)
            unweighted = LOSSES[name](scores, batch["labels"], batch["group_mask"])
        assert loss.item() == pytest.approx(want.item(), abs=1e-7)
        assert abs(loss.item() - unweighted.item()) > 1e-4, name
    plain = ListwiseObjective()
    plain.setup(tok, 32)
    assert "weights" not in plain.collate([Group("q", ["d"], [1.0])])


def test_group_weights_must_match_docs():
    from rankkit.errors import RankkitError

    with pytest.raises(RankkitError, match="2 documents but 1 weights"):
        Group("q", ["a", "b"], [1.0, 0.0], qid="x", weights=[1.0])
    assert Group("q", ["a", "b", "c"], [1, 0, 0], weights=[3, 2, 1]).head(2).weights == [3, 2]


def test_register_checks_what_it_is_given():
    with pytest.raises(ConfigError, match="Objective subclass"):
        register_objective("bad", dict)
    with pytest.raises(ConfigError, match="AdapterMethod"):
        register_adapter("bad", {"config": "LoraConfig"})
