"""Shared fixtures: the real collections in ../shared/data (skipped when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("RANKKIT_SHARED_DATA", ROOT.parent / "shared" / "data"))
DEMO = ROOT / "data" / "demo"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def shared(*parts: str) -> Path:
    """Path inside ../shared/data, or skip the test with the reason."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not available: {p}")
    return p


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
