"""Every recipe shipped in configs/ loads with its command's loader, and its options are ones the
trainer accepts (an unknown key would otherwise surface only after minutes of data preparation)."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))


def _kind(path: Path) -> str:
    name = path.name
    if "generator" in name:
        return "generator"
    if name.startswith("rank-r1"):
        return "rank-r1"
    if "retriever" in name:
        return "retriever"
    return "reranker"            # reranker and FIRST recipes share rankkit.training.config


def test_configs_found():
    assert len(CONFIGS) >= 8


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_config_loads(path: Path):
    kind = _kind(path)
    if kind == "generator":
        from rankkit.training.generator_recipe import load_recipe
        from rankkit.training.generator_train import SFT_DEFAULTS

        cfg = load_recipe(path)
        assert set(cfg["train"]) - {"steps"} <= set(SFT_DEFAULTS), sorted(set(cfg["train"]) - set(SFT_DEFAULTS))
        assert int(cfg["train"]["steps"]) >= 1
    elif kind == "rank-r1":
        from rankkit.training.rank_r1_recipe import load_recipe

        assert load_recipe(path)
    elif kind == "retriever":
        from rankkit.training.retriever_config import load_recipe

        assert load_recipe(path)
    else:
        from rankkit.training.config import load_config

        assert load_config(path)
