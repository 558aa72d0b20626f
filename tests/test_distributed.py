"""`rankkit train reranker` under `accelerate launch` (2 CPU processes, gloo) = its single-process equivalent.

The documented equivalence (README, "Training on several processes / GPUs"):
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


def test_two_process_accelerate_launch_equals_one_process(base, tmp_path):
    from rankkit.folders import read_manifest

    out = tmp_path / "launched"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    # the README's command: on a machine without GPUs --multi_gpu starts the processes with
    # torchrun and the HF Trainer joins them with the gloo backend
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
           "-m", "rankkit", "train", "reranker", "--config", str(_recipe(out, base, "model", batch_size=2)), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
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
