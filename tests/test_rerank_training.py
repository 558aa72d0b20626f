"""Training data, the trainer (determinism, resume) and `rankkit train reranker` end to end."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from test_cli import rankkit  # noqa: E402
from tiny_models import build_tiny_bert  # noqa: E402

import rankkit as rk  # noqa: E402
from rankkit.errors import ConfigError, DataFormatError  # noqa: E402
from rankkit.training.data import Group, check_labels, groups_from_dataset, split_queries  # noqa: E402

from conftest import DEMO, shared  # noqa: E402


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "base")


def _groups() -> list[Group]:
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma"]
    return [Group(f"what is {w}", [f"{w} is a letter", f"{words[(i + 1) % 6]} river", f"cats {i}"],
                  [1.0, 0.0, 0.0], qid=str(i)) for i, w in enumerate(words)]


def _scores(folder) -> np.ndarray:
    ce = rk.CrossEncoder(folder, show_progress=False)
    return ce.predict(["what is beta", "what is gamma"], ["beta is a letter", "cats"])


def test_groups_exclude_labelled_positives(demo):
    groups, report = groups_from_dataset(demo, rk.BM25.build(demo.corpus), num_negatives=3, depth=10)
    by_q = {}
    for g in groups:
        by_q.setdefault(g.qid, []).append(g)
        assert g.labels[0] >= 1 and g.labels[1:] == [0.0, 0.0, 0.0]
    for qid, gs in by_q.items():
        positives = {demo.corpus[d] for d in demo.qrels.relevant(qid)}
        for g in gs:
            assert not positives & set(g.docs[1:]), "a labelled positive was used as a negative"
    assert report.groups == len(groups) == sum(len(demo.qrels.relevant(q)) for q in by_q)


def test_split_is_deterministic_and_disjoint():
    a, b = split_queries([str(i) for i in range(50)], 0.2, seed=3)
    assert (a, b) == split_queries([str(i) for i in range(50)], 0.2, seed=3)
    assert len(b) == 10 and not set(a) & set(b)


def test_label_range_checked():
    with pytest.raises(DataFormatError, match="outside the expected range"):
        check_labels([Group("q", ["d"], [-1.0], qid="x")], "softmax_ce")
    with pytest.raises(DataFormatError, match="needs labels in"):
        check_labels([Group("q", ["d"], [2.0], qid="x")], "bce")


def test_training_is_seeded_and_resumes(base, tmp_path):
    from rankkit.training.trainer import TrainOptions, train

    opts = TrainOptions(steps=4, batch_size=2, group_size=3, lr=1e-3, seed=7, save_steps=2,
                        logging_steps=1, threads=1)
    a = train(_groups(), str(base), tmp_path / "a", method="lora", loss="softmax_ce", max_length=32, options=opts)
    b = train(_groups(), str(base), tmp_path / "b", method="lora", loss="softmax_ce", max_length=32, options=opts)
    assert a.trainable < a.total
    np.testing.assert_allclose(_scores(a.folder), _scores(b.folder), atol=1e-6)
    # interrupted after step 2: drop the last checkpoint and the result, run again -> resumes
    ckpt = tmp_path / "b.checkpoints"
    shutil.rmtree(ckpt / "checkpoint-4")
    shutil.rmtree(tmp_path / "b")
    c = train(_groups(), str(base), tmp_path / "b", method="lora", loss="softmax_ce", max_length=32, options=opts)
    assert c.steps == 4
    np.testing.assert_allclose(_scores(c.folder), _scores(a.folder), atol=1e-5)


def _config(tmp_path, base, **over) -> str:
    import yaml

    cfg = {"base_model": str(base), "output_dir": str(tmp_path / "model"), "max_length": 64,
           "adapter": {"method": "lora", "options": {"r": 4}}, "loss": {"name": "lambdaloss"},
           "data": [{"source": "triples", "path": str(shared("msmarco", "triples.sample.tsv"))}],
           "train": {"steps": 3, "batch_size": 4, "lr": 1e-3, "threads": 1}}
    cfg.update(over)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_cli_train_from_msmarco_triples_then_rerank(base, tmp_path):
    out = rankkit("train", "reranker", "--config", _config(tmp_path, base), "--json").stdout
    assert '"steps": 3' in out
    folder = tmp_path / "model"
    assert (folder / "adapter_model.safetensors").exists() and (folder / "rankkit.json").exists()
    run_file = tmp_path / "bm25.trec"
    rankkit("index", "bm25", "--corpus", DEMO, "--out", tmp_path / "idx", "--no-progress")
    rankkit("search", tmp_path / "idx", "--queries", DEMO, "--out", run_file, "--k", "5")
    rankkit("rerank", run_file, "--corpus", DEMO, "--queries", DEMO, "--model", folder,
            "--out", tmp_path / "ce.trec", "--quiet")
    first, second = rk.Run.read_trec(run_file), rk.Run.read_trec(tmp_path / "ce.trec")
    assert first.qids == second.qids
    for q in first.qids:
        assert sorted(first.docids(q)) == sorted(second.docids(q))
    # a bad interpolation weight stops before any model loads, and writes nothing
    proc = rankkit("rerank", run_file, "--corpus", DEMO, "--queries", DEMO, "--model", folder,
                   "--out", tmp_path / "bad.trec", "--interpolate", "half", ok=False)
    assert proc.returncode == 2 and "--interpolate" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "bad.trec").exists()


@pytest.mark.parametrize("field,value,message", [
    ("loss", {"name": "hinge"}, "unknown loss 'hinge'"),
    ("adapter", {"method": "lorax"}, "unknown adapter method 'lorax'"),
    ("epochs", 3, "unknown key"),
])
def test_cli_config_errors(base, tmp_path, field, value, message):
    proc = rankkit("train", "reranker", "--config", _config(tmp_path, base, **{field: value}), ok=False)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_bad_adapter_option_is_config_error(base):
    from rankkit.training.trainer import TrainOptions, train

    with pytest.raises(ConfigError, match="bad option"):
        train(_groups(), str(base), "/nonexistent/never", method="lora", adapter_options={"rank": 2},
              options=TrainOptions(steps=1))


@pytest.mark.parametrize("method", ["adalora", "full"])
def test_other_methods_train_and_reload(base, tmp_path, method):
    from rankkit.training.trainer import TrainOptions, train

    opts = TrainOptions(steps=3, batch_size=2, group_size=3, lr=1e-3, seed=1, logging_steps=1, threads=1)
    res = train(_groups(), str(base), tmp_path / method, method=method, loss="ranknet", max_length=32, options=opts)
    assert res.steps == 3 and np.isfinite(_scores(res.folder)).all()
