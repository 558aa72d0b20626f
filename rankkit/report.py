"""Plain-text tables for people (CLI output, comparisons)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Numbers right-aligned (floats to 4 decimals), text left-aligned."""
    cells = [[f"{c:.4f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    allrows = [list(header), *cells]
    widths = [max(len(r[i]) for r in allrows) for i in range(len(header))]
    numeric = [bool(cells) and all(_is_number(r[i]) for r in cells) for i in range(len(header))]

    def fmt(r: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if numeric[i] else c.ljust(w)
                         for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    return "\n".join([fmt(allrows[0]), "  ".join("-" * w for w in widths), *map(fmt, allrows[1:])])


def _is_number(text: str) -> bool:
    if text in ("", "nan"):
        return True
    try:
        float(text.rstrip("*"))
        return True
    except ValueError:
        return False
