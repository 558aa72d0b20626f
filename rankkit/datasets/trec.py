"""TREC collections: SGML documents, topics and qrels files."""

from __future__ import annotations

from pathlib import Path

from ..io import PathLike
from ..types import Dataset
from .formats import read_corpus, read_qrels, read_trec_topics


def load_trec(docs: PathLike, topics: PathLike, qrels: PathLike | None = None,
              name: str | None = None, field: str = "title") -> Dataset:
    """Load a TREC-style collection from its three files."""
    corpus = read_corpus(docs)
    queries = read_trec_topics(topics, field=field)
    from ..types import Qrels

    judged = read_qrels(qrels) if qrels is not None else Qrels()
    return Dataset(corpus, queries, judged, name=name or Path(docs).parent.name)
