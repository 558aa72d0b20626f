"""FIRST training: the weighted RankNet, shuffled windows with qrels targets, a LoRA adapter that
saves and reloads to identical rankings, and `rankkit train first` / `rankkit rerank --reranker first`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tiny_llm import tiny_llm_dir

import rankkit as rk
from rankkit.errors import ConfigError
from rankkit.rerankers.first import FirstReranker
from rankkit.training.first_data import qrels_order, shuffled_window, windows_from_run
from rankkit.training.first_objective import FirstObjective, weighted_ranknet

from conftest import DEMO

CORPUS = {f"d{i}": f"passage {i} about theme {i % 3}" for i in range(12)}


def test_weighted_ranknet_by_hand():
    import torch

    scores = torch.tensor([[2.0, 0.0, 1.0]])
    ranks = torch.tensor([[1, 2, 3]])                   # target: 0 > 1 > 2
    sp = torch.nn.functional.softplus
    # pairs (0,1) w=1/3, (0,2) w=1/4, (1,2) w=1/5: softplus(s_j - s_i), averaged over the 3 pairs
    # (the reference's weighted BCEWithLogitsLoss, mean reduction)
    want = (sp(torch.tensor(-2.0)) / 3 + sp(torch.tensor(-1.0)) / 4 + sp(torch.tensor(1.0)) / 5) / 3
    assert torch.allclose(weighted_ranknet(scores, ranks), want)
    padded = weighted_ranknet(torch.tensor([[2.0, 0.0, 1.0, 9.0]]), torch.tensor([[1, 2, 3, 0]]))
    assert torch.allclose(padded, want)                  # padding (rank 0) takes no part
    # grades 1, 0, 0: passages 1 and 2 tie, so only (0,1) and (0,2) count
    tied = weighted_ranknet(scores, ranks, torch.tensor([[1, 0, 0]]))
    assert torch.allclose(tied, (sp(torch.tensor(-2.0)) / 3 + sp(torch.tensor(-1.0)) / 4) / 2)
    assert weighted_ranknet(scores, ranks, torch.tensor([[0, 0, 0]])) == 0   # all tied: no pair


def test_shuffled_window_keeps_the_target():
    texts = ["a", "b", "c", "d", "e"]
    ex = shuffled_window("q", texts, [3, 1, 0, 2, 4], np.random.default_rng(1))
    assert [ex.passages[k] for k in ex.order] == ["d", "b", "a", "c", "e"]
    assert ex.passages != texts
    assert qrels_order(["x", "y", "z"], {"z": 2, "y": 1}) == [2, 1, 0]
    graded = shuffled_window("q", texts, [3, 1, 0, 2, 4], np.random.default_rng(1), grades=[0, 1, 0, 2, 0])
    assert dict(zip(graded.passages, graded.grades)) == {"a": 0, "b": 1, "c": 0, "d": 2, "e": 0}


def test_windows_from_a_run_put_relevant_first_and_add_missing_positives():
    ds = rk.datasets.load_beir(DEMO, split="test")
    run = rk.BM25.build(ds.corpus)(ds.queries)
    exs, counts = windows_from_run(ds, run, window=4, seed=0)
    assert counts["windows"] == len(exs) > 0
    for ex in exs:
        best = ex.passages[ex.order[0]]
        relevant = {ds.corpus[d] for d, g in ds.qrels[ex.qid].items() if g >= 1}
        assert best in relevant
        # the grades travel with the passages: relevant ones graded, the others 0 (ties)
        assert [p in relevant for p in ex.passages] == [g > 0 for g in ex.grades]
    exs2, _ = windows_from_run(ds, run, window=4, seed=0, add_positive=False)
    assert len(exs2) == counts["windows"] - counts["positives_added"]


def test_teacher_windows_follow_the_teacher_and_count_every_pair():
    ds = rk.datasets.load_beir(DEMO, split="test")
    run = rk.BM25.build(ds.corpus)(ds.queries)

    class Reverse(rk.Reranker):
        """A teacher that puts the first stage's order upside down."""

        def score_pairs(self, query_texts, qidx, docids):
            return -np.arange(len(docids), dtype=np.float64)[::-1]   # later candidates score higher

    exs, counts = windows_from_run(ds, run, window=4, seed=0, teacher=Reverse())
    assert counts["teacher_windows"] == len(exs) > 0
    for ex in exs:
        docs = run.docids(ex.qid).tolist()[:4]
        assert [ex.passages[k] for k in ex.order] == [ds.corpus[d] for d in docs[::-1]]
        assert ex.grades is None          # a full order: no ties for the ranking loss


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A LoRA adapter after 3 steps on the tiny model, and the in-memory model it was saved from."""
    from rankkit.training.trainer import TrainOptions, train

    kept = {}

    class Keep(FirstObjective):
        def save(self, model, tokenizer, folder, **manifest):
            kept["model"], kept["tok"] = model, tokenizer
            return super().save(model, tokenizer, folder, **manifest)

    rng = np.random.default_rng(0)
    texts = list(CORPUS.values())
    exs = [shuffled_window(f"theme {i % 3}", texts[:5], [2, 0, 1, 3, 4], rng) for i in range(6)]
    out = tmp_path_factory.mktemp("first") / "adapter"
    res = train(exs, str(tiny_llm_dir(4096)), out, objective=Keep(window=5), max_length=1024,
                options=TrainOptions(steps=3, batch_size=2, lr=2e-2, logging_steps=1, threads=1))
    return res, kept


def test_trained_adapter_saves_and_reloads_to_identical_rankings(trained):
    from rankkit.llm.transformers_backend import TransformersBackend

    res, kept = trained
    assert res.steps == 3 and np.isfinite(res.final_loss)
    manifest = json.loads((res.folder / "rankkit.json").read_text())
    assert manifest["kind"] == "llm-adapter" and manifest["reranker"]["window"] == 5
    lists = [np.array([f"d{i}" for i in range(12)], dtype=object)]
    kept["model"].eval()
    live = FirstReranker(corpus=CORPUS, window=5, stride=2,
                         backend=TransformersBackend(kept["model"], tokenizer=kept["tok"]))
    loaded = FirstReranker(res.folder, corpus=CORPUS, window=5, stride=2)
    prompt = live.window_prompt("theme 1", list(CORPUS.values())[:5])
    np.testing.assert_allclose(live.window_logprobs([prompt]), loaded.window_logprobs([prompt]), atol=1e-4)
    assert live.rank_lists(["theme 1"], lists, [None])[0].tolist() == \
        loaded.rank_lists(["theme 1"], lists, [None])[0].tolist()
    base = FirstReranker(str(tiny_llm_dir(4096)), corpus=CORPUS, window=5, stride=2)
    assert not np.allclose(base.window_logprobs([prompt]), loaded.window_logprobs([prompt]), atol=1e-4)


def test_adapter_reranks_with_the_passage_length_it_was_trained_with(trained, tmp_path):
    import shutil

    res, _ = trained
    copy = shutil.copytree(res.folder, tmp_path / "copy")
    manifest = json.loads((copy / "rankkit.json").read_text())
    assert manifest["reranker"]["max_passage_tokens"] == 128
    manifest["reranker"]["max_passage_tokens"] = 16
    (copy / "rankkit.json").write_text(json.dumps(manifest))
    assert FirstReranker(copy, corpus=CORPUS, window=5, stride=2).max_passage_tokens == 16
    assert FirstReranker(copy, corpus=CORPUS, window=5, stride=2, max_passage_tokens=64).max_passage_tokens == 64
    assert FirstReranker(str(tiny_llm_dir(4096)), corpus=CORPUS, window=5, stride=2).max_passage_tokens == 128


def test_objective_rejects_bad_options_and_data():
    with pytest.raises(ConfigError):
        FirstObjective(window=30)
    with pytest.raises(ConfigError):
        FirstObjective(rank_weight=0, lm_weight=0)
    with pytest.raises(ConfigError, match="FirstExample"):
        FirstObjective(window=4).check([object()])


def _recipe(tmp_path) -> str:
    import yaml

    cfg = {"base_model": str(tiny_llm_dir(4096)), "output_dir": str(tmp_path / "first"), "max_length": 1024,
           "adapter": {"method": "lora", "options": {"r": 4, "lora_alpha": 8}},
           "objective": {"name": "first", "options": {"window": 4, "max_passage_tokens": 32}},
           "data": [{"source": "first", "path": str(DEMO), "split": "test", "window": 4}],
           "train": {"steps": 2, "batch_size": 2, "lr": 1e-3, "threads": 1, "logging_steps": 1}}
    path = tmp_path / "first.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_cli_train_first_then_rerank_with_the_adapter(tmp_path, capsys):
    from rankkit.cli import main

    recipe = _recipe(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["train", "first", "--config", recipe, "--json", "--quiet"])
    assert exc.value.code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 2 and summary["pairs"] > 0
    ds = rk.datasets.load_beir(DEMO, split="test")
    first = rk.BM25.build(ds.corpus)(ds.queries).top(6)
    first.write_trec(tmp_path / "bm25.trec")
    out = tmp_path / "first.trec"
    with pytest.raises(SystemExit) as exc:
        main(["rerank", str(tmp_path / "bm25.trec"), "--corpus", str(DEMO / "corpus.jsonl"),
              "--queries", str(DEMO / "queries.jsonl"), "--out", str(out), "--reranker", "first",
              "--model", summary["folder"], "-o", "window=4", "-o", "stride=2", "--json", "--quiet"])
    assert exc.value.code == 0
    got = rk.Run.read_trec(out)
    assert len(got) == len(ds.queries) and got.num_hits() == first.num_hits()
    assert all(sorted(got.docids(q)) == sorted(first.docids(q)) for q in got.qids)


def test_train_first_needs_the_first_objective(tmp_path, capsys):
    import yaml

    from rankkit.cli import main

    path = _recipe(tmp_path)
    cfg = yaml.safe_load(open(path))
    cfg["objective"] = {"name": "listwise"}
    cfg["data"] = [{"source": "triples", "path": "x.tsv"}]
    open(path, "w").write(yaml.safe_dump(cfg))
    with pytest.raises(SystemExit) as exc:
        main(["train", "first", "--config", path])
    assert exc.value.code == 2 and "objective: {name: first}" in capsys.readouterr().err
