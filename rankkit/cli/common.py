"""Helpers shared by CLI commands: input resolution and output formatting."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from ..io import require_file
from ..report import format_table  # noqa: F401  (re-exported for commands)
from ..types import Qrels, Queries


def load_queries(path: Path, split: str | None = None) -> Queries:
    """Queries from a file, or from a BEIR folder (restricted to ``split`` if given)."""
    from ..datasets import read_queries
    from ..datasets.formats import find_split_file, read_qrels

    p = require_file(path, "queries")
    queries = read_queries(p)
    if p.is_dir() and split:
        judged = read_qrels(find_split_file(p, split))
        queries = queries.subset(q for q in queries if q in judged)
    return queries.check_not_empty(str(p))


def load_qrels(path: Path, split: str = "test") -> Qrels:
    """Qrels from a file, or ``qrels/<split>.tsv`` of a BEIR folder."""
    from ..datasets.formats import find_split_file, read_qrels

    p = require_file(path, "qrels")
    return read_qrels(find_split_file(p, split) if p.is_dir() else p)


def echo_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2))
