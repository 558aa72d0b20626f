"""MS MARCO-style training triples: ``query<TAB>positive<TAB>negative``."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DataFormatError
from ..io import PathLike, open_text


@dataclass(frozen=True)
class Triple:
    query: str
    positive: str
    negative: str


def read_triples(path: PathLike, limit: int | None = None) -> list[Triple]:
    """Read text triples; a line without exactly three non-empty columns is an error."""
    out: list[Triple] = []
    with open_text(path, "triples file") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\n\r")
            if not line.strip():
                continue
            cols = line.split("\t")
            if len(cols) != 3:
                raise DataFormatError(
                    f"expected 3 tab-separated columns (query, positive, negative), found {len(cols)}",
                    path, lineno)
            if not all(c.strip() for c in cols):
                raise DataFormatError("empty query, positive or negative", path, lineno)
            out.append(Triple(*cols))
            if limit is not None and len(out) >= limit:
                break
    return out
