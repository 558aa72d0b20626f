"""MS MARCO-style training triples: ``query<TAB>positive<TAB>negative``."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DataFormatError
from ..io import PathLike
from .formats import iter_tsv


@dataclass(frozen=True)
class Triple:
    query: str
    positive: str
    negative: str


def read_triples(path: PathLike, limit: int | None = None) -> list[Triple]:
    """Read text triples; a line without exactly three non-empty columns is an error."""
    out: list[Triple] = []
    for lineno, cols in iter_tsv(path, "triples", 3, " (query, positive, negative)"):
        if not all(c.strip() for c in cols):
            raise DataFormatError("empty query, positive or negative", path, lineno)
        out.append(Triple(*cols))
        if limit is not None and len(out) >= limit:
            break
    return out
