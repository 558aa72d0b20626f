"""Shared fixtures: the real collections in ../shared/data (skipped when absent)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("RANKKIT_SHARED_DATA", ROOT.parent / "shared" / "data")).resolve()  # relative: from the cwd
DEMO = ROOT / "data" / "demo"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def shared(*parts: str) -> Path:
    """Path inside ../shared/data, or skip the test with the reason."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not available: {p}")
    return p


def rankkit(*args: object, ok: bool = True) -> subprocess.CompletedProcess:
    """Run the ``rankkit`` command in a subprocess (this checkout first on the path, one thread)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "rankkit", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=600)
    if ok:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def one_thread():
    """Tiny-model tests run on one torch thread (use with ``pytest.mark.usefixtures``)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def scifact():
    import rankkit as rk

    return rk.datasets.load_beir(shared("beir", "scifact"), split="test")


@pytest.fixture(scope="session")
def scifact_bm25(scifact):
    import rankkit as rk

    return rk.BM25.build(scifact.corpus)


@pytest.fixture(scope="session")
def demo():
    import rankkit as rk

    return rk.datasets.load_beir(DEMO, split="test")
