"""Helpers shared by CLI commands: input resolution and output formatting."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from ..io import require_file
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


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned first column, right-aligned others; floats to 4 decimals."""
    cells = [[f"{c:.4f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    allrows = [list(header), *cells]
    widths = [max(len(r[i]) for r in allrows) for i in range(len(header))]

    def fmt(r: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    return "\n".join([fmt(allrows[0]), "  ".join("-" * w for w in widths), *map(fmt, allrows[1:])])


def echo_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2))
