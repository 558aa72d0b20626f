"""The adapter registry: every method merges to the same scores in memory; data-dependent
initialisations really read the data; bad input (options, ranks, missing data, unknown saved
method) fails with a clear ConfigError. Save -> load -> identical scores and merge through
folders for every registered method: tests/test_rerank_peft.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from tiny_models import build_tiny_bert  # noqa: E402

from rankkit.errors import ConfigError  # noqa: E402
from rankkit.training.adapters import ADAPTERS, FULL, AdapterMethod, register_adapter  # noqa: E402

QUERIES = ["what is beta", "vitamin d deficiency", "a b"]
DOCS = ["beta is a letter", "Vitamin D levels were low.", "unrelated text about rivers"]
SEQ_CLS = sorted(m for m, a in ADAPTERS.items() if a.task_type in (None, "SEQ_CLS"))
#: smaller settings where the defaults are slow on tiny data (EVA's SVD needs many passes at r=16)
FAST = {"eva": {"r": 4}}


def tiny_groups():
    from rankkit.training.data import Group

    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma"]
    return [Group(f"what is {w}", [f"{w} is a letter of the greek alphabet", f"{words[(i + 1) % 6]} river",
                                   f"cats {i} sleep all day"], [1.0, 0.0, 0.0], qid=str(i))
            for i, w in enumerate(words)]


def tiny_init_data(tok, lr: float = 1e-3):
    """InitData over the tiny groups (3 groups a batch), as ``trainer.train`` builds it."""
    from rankkit.training.adapters import init_data
    from rankkit.training.objectives import ListwiseObjective

    objective = ListwiseObjective()
    objective.setup(tok, 32, 3)
    return init_data(objective, tiny_groups(), 3, lr, 0)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "base")


def _wrapped(base, method, options=None, with_data=True):
    from rankkit.training.peft import add_adapter, load_base

    torch.manual_seed(2)
    net, tok, new = load_base(base)
    data = tiny_init_data(tok) if with_data else None
    return add_adapter(net, method, options, new, total_steps=10, data=data), tok


def _scores(model, tok):
    enc = tok(QUERIES, DOCS, truncation="only_second", max_length=32, padding=True, return_tensors="pt")
    with torch.inference_mode():
        return model(**enc).logits[:, 0].float().numpy()


@pytest.mark.parametrize("method", [m for m in SEQ_CLS if ADAPTERS[m].config is not None])
def test_merged_equals_unmerged(base, method):
    model, tok = _wrapped(base, method, FAST.get(method))
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    model.eval()
    before = _scores(model, tok)
    merged = model.merge_and_unload().eval()
    np.testing.assert_allclose(_scores(merged, tok), before, atol=1e-4, rtol=0)


def test_every_method_lists_its_options():
    for name, spec in ADAPTERS.items():
        accepted = spec.accepted_options()
        assert set(spec.defaults) <= set(accepted) | set(spec.fixed), name
        assert (accepted == []) == (spec.config is None), name


def test_unaccepted_option_names_it_and_the_accepted_ones(base):
    with pytest.raises(ConfigError, match=r"does not accept \['rank'\].*accepted: .*lora_alpha"):
        _wrapped(base, "lora", {"rank": 4})
    with pytest.raises(ConfigError, match=r"lora_sb.*\['u'\].*accepted: .*estimate"):
        _wrapped(base, "lora_sb", {"u": 9})            # LoRA-SB fixes u = r^2 itself
    with pytest.raises(ConfigError, match="takes no adapter options"):
        _wrapped(base, FULL, {"r": 2})


@pytest.mark.parametrize("method,option", [("lora", "r"), ("pissa", "r"), ("lora_sb", "r"),
                                           ("adalora", "init_r"), ("tinylora", "r")])
def test_rank_larger_than_layer_is_refused(base, method, option):
    with pytest.raises(ConfigError, match=r"rank 65 is larger than layer .* at most 64"):
        _wrapped(base, method, {option: 65})


@pytest.mark.parametrize("method", ["lora_ga", "eva", "lora_sb"])
def test_data_initialisation_without_data_is_refused(base, method):
    with pytest.raises(ConfigError, match="initialises from training data"):
        _wrapped(base, method, with_data=False)


def test_lora_with_eva_option_needs_data_too(base):
    with pytest.raises(ConfigError, match="initialises from training data"):
        _wrapped(base, "lora", {"init_lora_weights": "eva"}, with_data=False)
    with pytest.raises(ConfigError, match="init_lora_weights='loftq' is not supported"):
        _wrapped(base, "lora", {"init_lora_weights": "loftq"})


def test_data_initialisations_start_from_the_data(base):
    """LoRA-GA and EVA change A (B too for LoRA-GA) from what plain LoRA's init gives."""
    def factors(model):
        return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_A" in n or "lora_B" in n}

    plain = factors(_wrapped(base, "lora", {"lora_dropout": 0.0})[0])
    ga = factors(_wrapped(base, "lora_ga")[0])
    eva = factors(_wrapped(base, "eva", FAST["eva"])[0])
    assert any(float(v.abs().sum()) > 0 for n, v in ga.items() if "lora_B" in n)   # plain LoRA: B = 0
    assert all(float(v.abs().sum()) == 0 for n, v in plain.items() if "lora_B" in n)
    a = next(n for n in eva if "lora_A" in n)
    # EVA's A rows are the top right-singular vectors of the layer inputs: orthonormal
    rows = eva[a]
    np.testing.assert_allclose((rows @ rows.T).numpy(), np.eye(rows.shape[0]), atol=1e-4)


def test_pissa_saved_adapter_is_plain_lora_over_the_original_base(base, tmp_path):
    from rankkit.folders import load_reranker, save_reranker

    model, tok = _wrapped(base, "pissa", {"r": 4})
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    before = _scores(model.eval(), tok)
    folder = save_reranker(model, tok, tmp_path / "p", base_model=str(base), method="pissa")
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["init_lora_weights"] is True
    loaded, tok2, _ = load_reranker(folder)
    np.testing.assert_allclose(_scores(loaded, tok2), before, atol=1e-5, rtol=0)


def test_unknown_saved_method_is_refused(base, tmp_path):
    from rankkit.folders import load_reranker, save_reranker

    model, tok = _wrapped(base, "lora", {"r": 2})
    folder = save_reranker(model, tok, tmp_path / "a", base_model=str(base), method="lora")
    manifest = json.loads((folder / "rankkit.json").read_text())
    (folder / "rankkit.json").write_text(json.dumps({**manifest, "method": "lora_future"}))
    with pytest.raises(ConfigError, match="'lora_future', unknown to this rankkit version"):
        load_reranker(folder)


def test_registered_method_with_extra_option(base):
    from rankkit.training import adapters

    spec = AdapterMethod("LoraConfig", {"r": 2, "target_modules": ["query"]}, "q only", rank_option="r")
    register_adapter("lora_q_test", spec)
    try:
        model, _ = _wrapped(base, "lora_q_test")
        assert any("query" in n and "lora_A" in n for n, _ in model.named_parameters())
        assert not any("value" in n and "lora_A" in n for n, _ in model.named_parameters())
    finally:
        adapters.ADAPTERS.pop("lora_q_test")
        adapters.ADAPTER_METHODS.discard("lora_q_test")


def test_folders_know_exactly_the_builtin_methods():
    """Inference checks saved methods without importing rankkit.training: its list is the registry's."""
    import subprocess
    import sys
    from pathlib import Path

    from rankkit.training.adapters import _builtin

    code = "import json, rankkit.folders as f; print(json.dumps(sorted(f.ADAPTER_METHODS)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert json.loads(out.stdout) == sorted(_builtin())


def test_eva_that_cannot_converge_stops_with_a_clear_error(base, monkeypatch):
    """peft cycles EVA's batches until convergence: bounded, it ends in a ConfigError, not a hang."""
    from rankkit.training import adapter_inits

    monkeypatch.setattr(adapter_inits, "EVA_MAX_FORWARDS", 3)
    with pytest.raises(ConfigError, match="did not converge in 3 forward passes"):
        _wrapped(base, "eva")
    with pytest.raises(ConfigError, match="bad eva_config: `tau` must be between"):
        _wrapped(base, "eva", {"eva_config": {"tau": 1.5}})


def test_eva_covers_the_pooler(base):
    """BERT's pooler sees one vector per sequence ([batch, dim]): EVA initialises it too."""
    model, _ = _wrapped(base, "eva", {"r": 2, "target_modules": ["query", "dense"]})
    pooler = [p for n, p in model.named_parameters() if "pooler" in n and "lora_A" in n]
    assert pooler and float(pooler[0].detach().abs().sum()) > 0
