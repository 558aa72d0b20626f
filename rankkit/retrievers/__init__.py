"""First-stage retrievers. Each index folder carries a ``rankkit.json`` manifest
whose ``kind`` says which class loads it (see :func:`load_index`)."""

from __future__ import annotations

import importlib
from typing import Any

from ..io import PathLike

#: manifest kind -> "module:Class" with a ``load(folder)`` classmethod
INDEX_KINDS: dict[str, str] = {
    "bm25": "rankkit.retrievers.bm25:BM25",
    "dense": "rankkit.retrievers.dense:DenseRetriever",
    "cur": "rankkit.retrievers.cur:CURRetriever",
}


def load_index(folder: PathLike, **kwargs: Any) -> Any:
    """Load any rankkit index folder (BM25, dense, ...) as a retriever stage."""
    from ..errors import ConfigError
    from ..folders import require_manifest

    kind = require_manifest(folder).get("kind")
    if kind not in INDEX_KINDS:
        raise ConfigError(f"{folder}: unknown index kind {kind!r} (known: {', '.join(INDEX_KINDS)})")
    module, cls = INDEX_KINDS[kind].split(":")
    return getattr(importlib.import_module(module), cls).load(folder, **kwargs)
