"""OSF: the update leaves each layer's preserved singular subspace unchanged (measured), the head is
trained and saved, save -> load gives the same scores, and training goes on domain after domain."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from tiny_models import build_tiny_bert  # noqa: E402

import rankkit as rk  # noqa: E402
from rankkit.errors import ConfigError  # noqa: E402
from rankkit.training.data import Group  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
RANK = 16
QUERIES = ["what is beta", "what is gamma", "cats"]
DOCS = ["beta is a letter", "cats", "gamma river"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "base")


def _groups(offset: int = 0) -> list[Group]:
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma"]
    return [Group(f"what is {w}", [f"{w} is a letter", f"{words[(i + 1 + offset) % 6]} river", f"cats {i}"],
                  [1.0, 0.0, 0.0], qid=str(i)) for i, w in enumerate(words)]


def _weights(folder) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForSequenceClassification

    net = AutoModelForSequenceClassification.from_pretrained(str(folder))
    return {n: p.detach().clone() for n, p in net.named_parameters()}


def _train(base, out, method="osf", options=None, steps=4):
    from rankkit.training.trainer import TrainOptions, train

    opts = TrainOptions(steps=steps, batch_size=2, group_size=3, lr=5e-3, seed=3, logging_steps=1, threads=1)
    return train(_groups(), str(base), out, method=method, loss="softmax_ce", max_length=32, options=opts,
                 adapter_options={"effective_rank": RANK} if options is None and method == "osf" else options)


def _targets(w: dict[str, torch.Tensor]) -> list[str]:
    return [n for n in w if n.endswith(".weight") and w[n].ndim == 2 and ("encoder" in n or "pooler" in n)]


def test_osf_update_is_orthogonal_to_the_preserved_subspace(base, tmp_path):
    from rankkit.training.osf import preserved_projection

    before = _weights(base)                                   # head absent: newly initialised
    first = _train(base, tmp_path / "d1")
    manifest = json.loads((first.folder / "rankkit.json").read_text())
    assert manifest["kind"] == "cross-encoder" and manifest["method"] == "osf"   # merged full model
    after = _weights(first.folder)
    names = _targets(before)
    assert len(names) == 13
    moved = [float(torch.linalg.norm(after[n] - before[n])) for n in names]
    assert min(moved) > 1e-4                                  # every layer was trained ...
    proj = [preserved_projection(before[n], after[n], RANK) for n in names]
    assert max(proj) < 1e-4, proj                             # ... outside its top-RANK singular subspace
    # the head was trained (not left at the base's random init) and saved with the model
    assert np.isfinite(rk.CrossEncoder(first.folder, show_progress=False).predict(QUERIES, DOCS)).all()

    # domain 2 trains on from the domain-1 folder: the SVD is taken of the updated weights
    second = _train(first.folder, tmp_path / "d2")
    after2 = _weights(second.folder)
    assert json.loads((second.folder / "rankkit.json").read_text())["base_model"] == str(first.folder)
    proj2 = [preserved_projection(after[n], after2[n], RANK) for n in names]
    assert max(proj2) < 1e-4 and min(float(torch.linalg.norm(after2[n] - after[n])) for n in names) > 1e-4
    head = "classifier.weight"
    assert not torch.equal(after2[head], after[head])
    from rankkit.folders import load_base

    with pytest.raises(ConfigError, match="head of 1 labels"):     # a domain sequence disagreeing on the head
        load_base(first.folder, num_labels=2)


def test_save_load_identical_scores(base, tmp_path):
    from rankkit.folders import save_reranker
    from rankkit.training.osf import reproject
    from rankkit.training.peft import add_adapter, load_base

    torch.manual_seed(0)
    net, tok, new = load_base(base)
    model = add_adapter(net, "osf", {"effective_rank": 0.25}, new)
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("base_model.model.classifier.") for n in trained)
    assert all("osf_svd_params" in n or ".classifier." in n for n in trained)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    reproject(model)
    model.eval()
    enc = tok(QUERIES, DOCS, truncation="only_second", max_length=32, padding=True, return_tensors="pt")
    with torch.inference_mode():
        want = model(**enc).logits[:, 0].numpy()
    folder = save_reranker(model, tok, tmp_path / "osf", base_model=str(base), method="osf", max_length=32)
    got = rk.CrossEncoder(folder, show_progress=False).predict(QUERIES, DOCS)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_sequential_lora_trains_on_from_an_adapter_folder(base, tmp_path):
    first = _train(base, tmp_path / "l1", method="lora", options={"r": 4}, steps=2)
    second = _train(first.folder, tmp_path / "l2", method="lora", options={"r": 4}, steps=2)
    manifest = json.loads((second.folder / "rankkit.json").read_text())
    assert manifest["kind"] == "cross-encoder-adapter" and manifest["base_model"] == str(first.folder)
    a = rk.CrossEncoder(first.folder, show_progress=False).predict(QUERIES, DOCS)
    b = rk.CrossEncoder(second.folder, show_progress=False).predict(QUERIES, DOCS)
    assert np.isfinite(b).all() and not np.allclose(a, b)


@pytest.mark.parametrize("rank", [1.5, 0, "half", True])
def test_bad_preserved_rank(base, rank):
    from rankkit.training.peft import add_adapter, load_base

    net, _, new = load_base(base)
    with pytest.raises(ConfigError, match="effective_rank"):
        add_adapter(net, "osf", {"effective_rank": rank}, new)


def test_recipe_trains_on_from_a_previous_folder_named_relative_to_it(base, tmp_path):
    from rankkit.training.config import run_config

    first = _train(base, tmp_path / "d1")
    (tmp_path / "t.tsv").write_text("".join(f"what is {w}\t{w} is a letter\tcats {w}\n" for w in "abcdef"))
    cfg = {"_dir": str(tmp_path), "base_model": "d1", "output_dir": "d2", "max_length": 32,
           "adapter": {"method": "osf", "options": {"effective_rank": RANK}},
           "data": [{"source": "triples", "path": "t.tsv"}],
           "train": {"steps": 2, "batch_size": 2, "group_size": 2, "threads": 1, "lr": 5e-3}}
    res = run_config(cfg)
    manifest = json.loads((res.folder / "rankkit.json").read_text())
    assert manifest["base_model"] == str(first.folder) and manifest["method"] == "osf"
