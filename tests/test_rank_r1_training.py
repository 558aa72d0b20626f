"""Rank-R1 training on the tiny LLM: sets from qrels + BM25, trl SFT warm-up and GRPO steps, an adapter
that reloads to identical greedy outputs, and the reranker over a real (tiny) model."""

from __future__ import annotations

import pytest
from tiny_llm import tiny_llm_dir

import rankkit as rk
from rankkit.folders import read_manifest
from rankkit.rerankers.rank_r1 import RankR1Reranker
from rankkit.training.rank_r1_data import examples_from_run
from rankkit.training.rank_r1_train import grpo_train, reward_per_step, sft_warmup

from conftest import DEMO


@pytest.fixture(scope="module")
def examples():
    ds = rk.datasets.load_beir(DEMO, split="test")
    run = rk.BM25.build(ds.corpus)(ds.queries)
    exs, counts = examples_from_run(ds, run, set_size=3, depth=10, seed=0)
    return ds, run, exs, counts


def test_sets_hold_one_relevant_and_sampled_negatives(examples):
    ds, run, exs, counts = examples
    assert counts["examples"] == len(exs) > 0
    for ex in exs:
        assert len(ex.passages) == 3 and ex.grades[ex.label] == max(ex.grades) > 0
        assert sum(g > 0 for g in ex.grades) == 1
    again, _ = examples_from_run(ds, run, set_size=3, depth=10, seed=0)
    assert [e.passages for e in again] == [e.passages for e in exs]        # seeded


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    """A random (non-zero) LoRA on the tiny model, saved as a Rank-R1 adapter folder (no training: fast)."""
    import peft
    import torch

    from rankkit.llm.loading import load_causal_lm
    from rankkit.training.rank_r1_train import save_adapter

    torch.manual_seed(0)
    base = str(tiny_llm_dir())
    model, tok = load_causal_lm(base, cache=False)
    cfg = peft.LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, init_lora_weights=False,
                          target_modules=["q_proj", "v_proj"])
    folder = save_adapter(peft.get_peft_model(model, cfg), tok, tmp_path_factory.mktemp("lora") / "a",
                          {"base_model": base, "phase": "test"})
    return base, folder


def test_adapter_reloads_to_identical_greedy_outputs(adapter, examples):
    ds, run, _, _ = examples
    base, folder = adapter
    qs = ds.queries.subset(list(ds.queries)[:2])
    head = run.with_queries(list(qs)).top(5)
    outs = []
    for model, extra in ((base, {"adapter": folder}), (folder, {})):
        rr = RankR1Reranker(model, corpus=ds.corpus, set_size=3, top_k=3, max_new_tokens=6,
                            max_passage_tokens=16, **extra)
        got = rr(qs, head)
        outs.append(([got.docids(q).tolist() for q in qs],
                     [[r["output"] for r in got.extras["reasoning"][q]] for q in qs]))
        for q in qs:                                    # every candidate stays
            assert sorted(got.docids(q).tolist()) == sorted(head.docids(q).tolist())
        assert sum(rr.stats["parse"].values()) == rr.stats["comparisons"] > 0
    assert outs[0] == outs[1]
    plain = RankR1Reranker(base, corpus=ds.corpus, set_size=3, top_k=3, max_new_tokens=6, max_passage_tokens=16)
    plain_out = plain(qs, head)
    assert [[r["output"] for r in plain_out.extras["reasoning"][q]] for q in qs] != outs[0][1]   # the adapter acts


@pytest.fixture(scope="module")
def trained(examples, tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    _, _, exs, _ = examples
    base = str(tiny_llm_dir())
    root = tmp_path_factory.mktemp("rankr1")
    sft = sft_warmup(base, exs[:4], root / "sft", steps=2, max_passage_tokens=16, options={"batch_size": 2})
    grpo = grpo_train(base, exs[:4], root / "grpo", steps=2, init_adapter=sft.folder, max_passage_tokens=16,
                      options={"num_generations": 2, "prompts_per_step": 1, "max_completion_length": 8})
    return base, sft, grpo


@pytest.mark.slow
def test_grpo_runs_and_records_every_option(trained):
    base, sft, grpo = trained
    man = read_manifest(grpo.folder)
    assert man["kind"] == "rank-r1-adapter" and man["phase"] == "grpo" and man["init_adapter"] == str(sft.folder)
    for key in ("beta", "loss_type", "num_generations", "max_completion_length", "temperature", "scale_rewards"):
        assert key in man["grpo"]
    steps = reward_per_step(grpo.log)
    assert len(steps) == 2 and all(0.0 <= r <= 1.5 for _, r in steps)


@pytest.mark.slow
def test_trained_adapter_reloads_to_identical_greedy_outputs(trained, examples):
    ds, run, _, _ = examples
    base, _, grpo = trained
    qs = ds.queries.subset(list(ds.queries)[:2])
    head = run.with_queries(list(qs)).top(5)
    outs = []
    for _ in range(2):
        rr = RankR1Reranker(base, corpus=ds.corpus, adapter=grpo.folder, set_size=3, top_k=3,
                            max_new_tokens=6, max_passage_tokens=16)
        got = rr(qs, head)
        outs.append(([got.docids(q).tolist() for q in qs],
                     [[r["output"] for r in got.extras["reasoning"][q]] for q in qs]))
        for q in qs:                                    # every candidate stays
            assert sorted(got.docids(q).tolist()) == sorted(head.docids(q).tolist())
    assert outs[0] == outs[1]
    plain = RankR1Reranker(base, corpus=ds.corpus, set_size=3, top_k=3, max_new_tokens=6, max_passage_tokens=16)
    plain(qs, head)
    assert sum(plain.stats["parse"].values()) == plain.stats["comparisons"] > 0
    # loading the adapter folder as the model works too (its manifest names the base)
    again = RankR1Reranker(grpo.folder, corpus=ds.corpus, set_size=3, top_k=3, max_new_tokens=6,
                           max_passage_tokens=16)(qs, head)
    assert [again.docids(q).tolist() for q in qs] == outs[0][0]
    assert any(len(again.extras["reasoning"][q]) > 0 for q in qs)


def test_cli_rerank_json_carries_the_reasoning(adapter, examples, tmp_path, capsys):
    import json

    from rankkit.cli import main

    ds, run, _, _ = examples
    _, folder = adapter
    run.top(4).write_trec(tmp_path / "bm25.trec")
    with pytest.raises(SystemExit) as exc:
        main(["rerank", str(tmp_path / "bm25.trec"), "--corpus", str(DEMO / "corpus.jsonl"),
              "--queries", str(DEMO / "queries.jsonl"), "--out", str(tmp_path / "r1.trec"), "--reranker", "rank-r1",
              "--model", str(folder), "-o", "set_size=3", "-o", "max_new_tokens=4", "-o", "max_passage_tokens=16",
              "--json", "--quiet"])
    assert exc.value.code == 0
    summary = json.loads(capsys.readouterr().out)
    recs = [r for q in summary["reasoning"].values() for r in q]
    assert recs and {"candidates", "winner", "status", "reasoning"} <= set(recs[0])
    got = rk.Run.read_trec(tmp_path / "r1.trec")
    assert got.num_hits() == run.top(4).num_hits()


def test_train_rank_r1_cli_rejects_unknown_keys(tmp_path, capsys):
    from rankkit.cli import main

    path = tmp_path / "bad.yaml"
    path.write_text("data: {path: x}\nwrongkey: 1\n")
    with pytest.raises(SystemExit) as exc:
        main(["train", "rank-r1", "--config", str(path)])
    assert exc.value.code == 2 and "wrongkey" in capsys.readouterr().err
