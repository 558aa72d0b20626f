"""The embedded demo collection (``data/demo``) and the demo job."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import MissingResourceError
from .types import Dataset


def demo_path() -> Path:
    """Folder of the demo collection: ``$RANKKIT_DEMO_DATA`` or the checkout's ``data/demo``."""
    env = os.environ.get("RANKKIT_DEMO_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parent.parent / "data" / "demo")
    for c in candidates:
        if (c / "corpus.jsonl").exists():
            return c
    raise MissingResourceError(
        "demo collection not found (looked in: " + ", ".join(map(str, candidates))
        + "); install rankkit from a checkout with `pip install -e .` or set RANKKIT_DEMO_DATA")


def load_demo() -> Dataset:
    from .datasets import load_beir

    return load_beir(demo_path(), split="test")
