"""Many adapters on one base: switching gives each adapter's own scores exactly; wrong bases refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from tiny_models import build_tiny_bert  # noqa: E402

from rankkit.errors import ConfigError  # noqa: E402

from conftest import rankkit  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

QUERIES = ["aspirin lowers the risk of heart attack", "vitamin d deficiency", "a b", "rivers"]
DOCS = ["Daily aspirin reduces myocardial infarction in adults. " * 3, "Vitamin D levels were low.",
        "unrelated text about bicycles and rivers", "rivers and lakes of the north"]


def _adapter(base, folder, seed, method="lora", options=None):
    """A saved adapter whose trainable weights (adapter + head) moved away from their init."""
    from rankkit.folders import save_reranker
    from rankkit.training.peft import add_adapter, load_base

    torch.manual_seed(seed)
    net, tok, new = load_base(base)
    model = add_adapter(net, method, options or {"r": 4, "lora_dropout": 0.0}, new)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.2 * torch.randn_like(p))
    return save_reranker(model.eval(), tok, folder, base_model=str(base), method=method, max_length=32)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("multi")
    base = build_tiny_bert(root / "base")
    return {"base": base, "a": _adapter(base, root / "a", 1), "b": _adapter(base, root / "b", 2),
            "c": _adapter(base, root / "c", 3, options={"r": 2, "lora_dropout": 0.0,
                                                        "target_modules": ["query", "value"]}),
            "other": build_tiny_bert(root / "other", seed=7), "root": root}


def _ce(model, **kw):
    from rankkit.rerankers.cross_encoder import CrossEncoder

    return CrossEncoder(model, show_progress=False, **kw)


def test_switching_gives_each_adapters_own_scores(setup):
    s = setup
    multi = _ce(s["base"], adapters={"a": s["a"], "b": s["b"], "c": s["c"]})
    assert multi.adapter == "a" and multi.params()["adapter"] == "a"
    alone = {n: _ce(s["base"], adapters={n: s[n]}).predict(QUERIES, DOCS) for n in "abc"}
    got = {n: multi.use(n).predict(QUERIES, DOCS) for n in "cba"}   # switch in another order
    for n in "abc":
        np.testing.assert_array_equal(got[n], alone[n])              # exactly the adapter alone
        merged = _ce(s[n]).predict(QUERIES, DOCS)                    # the usual single-folder load
        np.testing.assert_allclose(got[n], merged, atol=1e-5, rtol=0)
    assert not np.allclose(got["a"], got["b"]) and not np.allclose(got["a"], got["c"])
    # the original reranker still scores with its own adapter after the views switched the model
    np.testing.assert_array_equal(multi.predict(QUERIES, DOCS), alone["a"])
    np.testing.assert_array_equal(multi.predict(QUERIES, DOCS, adapter="b"), alone["b"])
    assert multi.use("b").fingerprint() != multi.fingerprint()


def test_memory_of_each_extra_adapter(setup):
    from rankkit.rerankers.multi_adapter import adapter_bytes, load_adapters, parameter_bytes

    one = load_adapters(setup["base"], {"a": setup["a"]})
    two = load_adapters(setup["base"], {"a": setup["a"], "b": setup["b"]})
    extra = adapter_bytes(two.model, "b")
    assert extra > 0 and extra == adapter_bytes(two.model, "a")
    assert parameter_bytes(two.model) - parameter_bytes(one.model) == extra
    assert extra < 0.2 * parameter_bytes(one.model)


def test_bad_adapter_sets_are_refused(setup, tmp_path):
    s = setup
    with pytest.raises(ConfigError, match="another base model"):
        _ce(s["other"], adapters={"a": s["a"]})
    # an old folder without a base fingerprint must name the same base
    legacy = tmp_path / "legacy"
    import shutil

    shutil.copytree(s["a"], legacy)
    manifest = json.loads((legacy / "rankkit.json").read_text())
    del manifest["base_fingerprint"]
    (legacy / "rankkit.json").write_text(json.dumps(manifest))
    _ce(s["base"], adapters={"old": legacy})                     # same base: accepted
    with pytest.raises(ConfigError, match="not .*other"):
        _ce(s["other"], adapters={"old": legacy})
    with pytest.raises(ConfigError, match="no adapter named 'z'"):
        _ce(s["base"], adapters={"a": s["a"]}, adapter="z")
    with pytest.raises(ConfigError, match="adapters="):
        _ce(s["base"], adapter="a")
    with pytest.raises(ConfigError, match="adapter name"):
        _ce(s["base"], adapters={"a.b": s["a"]})
    manifest["num_labels"] = 2
    (legacy / "rankkit.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="disagree on the head"):
        _ce(s["base"], adapters={"a": s["a"], "old": legacy})


def test_cli_rerank_with_named_adapters(setup, tmp_path):
    s = setup
    (tmp_path / "docs.tsv").write_text("".join(f"d{i}\t{t}\n" for i, t in enumerate(DOCS)))
    (tmp_path / "q.tsv").write_text(f"q1\t{QUERIES[0]}\n")
    (tmp_path / "run.trec").write_text("".join(f"q1 Q0 d{i} {i + 1} {10 - i} bm25\n" for i in range(4)))
    common = ["rerank", tmp_path / "run.trec", "--corpus", tmp_path / "docs.tsv", "--queries", tmp_path / "q.tsv",
              "--model", s["base"], "--adapter-folder", f"a={s['a']}", "--adapter-folder", f"b={s['b']}"]
    rankkit(*common, "--adapter", "b", "--out", tmp_path / "b.trec")
    scores = {ln.split()[2]: float(ln.split()[4]) for ln in (tmp_path / "b.trec").read_text().splitlines()}
    want = _ce(s["base"], adapters={"b": s["b"]}).predict([QUERIES[0]] * 4, DOCS)
    np.testing.assert_allclose([scores[f"d{i}"] for i in range(4)], want, atol=1e-4, rtol=0)
    bad = rankkit(*common, "--adapter", "zz", "--out", tmp_path / "x.trec", ok=False)
    assert bad.returncode != 0 and "not one of the --adapter-folder" in bad.stderr + bad.stdout
