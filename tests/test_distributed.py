"""`rankkit train ...` under `accelerate launch` (2 CPU processes, gloo).

Default suite: the reranker's 2-process adapter equals its single-process
equivalent. Slow (``-m slow``): retriever and Rank-R1 launches write each
folder once and print one result. The documented equivalence (README, "Training on several processes / GPUs"):
N processes with ``batch_size: b`` train the model one process trains with
``batch_size: N*b``, or with ``batch_size: b`` and ``gradient_accumulation: N``
(same seed, same data order; no dropout, whose masks are random per process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("accelerate")

from dense_fixtures import fixture_tiny_model  # noqa: E402,F401  (fixture)
from retriever_fixtures import toy_dataset, write_beir  # noqa: E402
from tiny_models import build_tiny_bert  # noqa: E402

from conftest import ROOT  # noqa: E402


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """The tiny BERT cross-encoder without dropout, so two runs differ only by their batching."""
    folder = build_tiny_bert(tmp_path_factory.mktemp("tiny") / "base")
    cfg_file = folder / "config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0)
    cfg_file.write_text(json.dumps(cfg))
    return folder


def _recipe(tmp_path: Path, base: Path, name: str, **train) -> Path:
    import yaml

    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta"]
    triples = tmp_path / "triples.tsv"
    triples.write_text("".join(f"what is {w}\t{w} is a greek letter\t{words[(i + 3) % 8]} river {i}\n"
                               for i, w in enumerate(words * 2)))
    cfg = {"base_model": str(base), "output_dir": str(tmp_path / name), "max_length": 32,
           "adapter": {"method": "lora", "options": {"r": 4, "lora_dropout": 0.0}},
           "loss": {"name": "softmax_ce"}, "data": [{"source": "triples", "path": str(triples)}],
           "train": {"steps": 3, "lr": 1e-2, "warmup_ratio": 0.0, "seed": 5, "logging_steps": 1,
                     "threads": 1, **train}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def _close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 1e-3) -> bool:
    """Equal up to float rounding. Padding to the longest pair of 2 or of 4 groups changes scores
    by ~1e-7, which Adam's normalised step (lr 1e-2) turns into weight differences ~1e-4;
    training on other batches moves the weights ~3e-2."""
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=atol, rtol=0) for k in a)


def _single(recipe: Path) -> Path:
    from rankkit.training.config import load_config, run_config

    return run_config(load_config(recipe)).folder


def _launch(*args: object) -> subprocess.CompletedProcess:
    """The README's command: on a machine without GPUs ``--multi_gpu`` starts the processes with
    torchrun, and the trainer joins them with the gloo backend."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
           "-m", "rankkit", *map(str, args), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_two_process_accelerate_launch_equals_one_process(base, tmp_path):
    from rankkit.folders import read_manifest

    out = tmp_path / "launched"
    out.mkdir()
    proc = _launch("train", "reranker", "--config", _recipe(out, base, "model", batch_size=2))
    assert proc.stdout.count('"steps": 3') == 1, proc.stdout      # one result printed: the main process's
    manifest = read_manifest(out / "model")
    assert manifest["training"]["processes"] == 2
    # one folder, written once: no temporary folder of a second writer left beside it
    assert (out / "model" / "adapter_model.safetensors").exists()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    launched = _weights(out / "model")

    global_batch = _weights(_single(_recipe(tmp_path, base, "b4", batch_size=4)))
    accumulated = _weights(_single(_recipe(tmp_path, base, "b2x2", batch_size=2, gradient_accumulation=2)))
    per_device = _weights(_single(_recipe(tmp_path, base, "b2", batch_size=2)))
    assert any(v.abs().max() > 1e-4 for k, v in launched.items() if "lora_B" in k)   # it trained
    assert _close(launched, global_batch)
    assert _close(launched, accumulated)
    assert not _close(launched, per_device)   # the 2 processes did not each train alone on batch 2


@pytest.mark.slow
def test_two_process_retriever_training_writes_one_folder_and_index(tiny_model, tmp_path):
    beir = write_beir(tmp_path / "beir", toy_dataset())
    (tmp_path / "r.yaml").write_text(
        f"base_model: {tiny_model}\noutput_dir: out/retriever\n"
        "adapter: {method: lora, options: {r: 4, target_modules: [query, value]}}\n"
        f"data: {{path: {beir.name}, split: train}}\n"
        "negatives: {mine_from: bm25, num_negatives: 1, depth: 5, teacher: none}\n"
        "train: {steps: 2, batch_size: 4, lr: 1.0e-3, logging_steps: 1}\n"
        "index: {output_dir: idx/trained, type: flat}\n")
    proc = _launch("train", "retriever", "--config", tmp_path / "r.yaml", "-q")
    summary = json.loads(proc.stdout)        # one JSON result: the other process printed nothing
    assert summary["steps"] == 2 and summary["index"] == str(tmp_path / "idx" / "trained")
    assert (tmp_path / "out" / "retriever" / "rankkit.json").exists()
    assert json.loads((tmp_path / "idx" / "trained" / "rankkit.json").read_text())["model"] \
        == str(tmp_path / "out" / "retriever")
    for folder in (tmp_path / "out", tmp_path / "idx"):
        assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_two_process_rank_r1_training_writes_each_phase_once(tmp_path):
    from tiny_llm import tiny_llm_dir

    from conftest import DEMO

    (tmp_path / "r1.yaml").write_text(
        f"base_model: {tiny_llm_dir()}\noutput_dir: out\nmax_passage_tokens: 16\n"
        f"data: {{path: {DEMO}, split: test, queries: 4, set_size: 3, depth: 10}}\n"
        "lora: {r: 4, lora_alpha: 8, lora_dropout: 0.0, target_modules: [q_proj, v_proj]}\n"
        "sft: {steps: 1, batch_size: 1}\n"
        "grpo: {steps: 1, num_generations: 2, prompts_per_step: 1, max_completion_length: 8}\n")
    proc = _launch("train", "rank-r1", "--config", tmp_path / "r1.yaml", "-q")
    summary = json.loads(proc.stdout)        # one JSON result: the other process printed nothing
    assert summary["sft_steps"] == 1 and summary["grpo_steps"] == 1
    for phase in ("sft", "grpo"):
        assert (tmp_path / "out" / phase / "rankkit.json").exists()
        assert (tmp_path / "out" / phase / "trainer_log.json").exists()
    assert not [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
