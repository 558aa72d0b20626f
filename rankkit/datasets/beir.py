"""BEIR folders: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``."""

from __future__ import annotations

from pathlib import Path

from ..io import PathLike, require_file
from ..types import Dataset
from .formats import find_split_file, read_corpus_jsonl, read_qrels, read_queries_jsonl


def load_beir(path: PathLike, split: str = "test", all_queries: bool = False) -> Dataset:
    """Load a BEIR-format collection; queries are those judged in ``split``.

    ``all_queries=True`` keeps every query in ``queries.jsonl``.
    """
    folder = require_file(path, "BEIR folder")
    corpus_file = folder / "corpus.jsonl"
    if not corpus_file.exists() and (folder / "corpus.jsonl.gz").exists():
        corpus_file = folder / "corpus.jsonl.gz"
    corpus = read_corpus_jsonl(require_file(corpus_file, "BEIR corpus.jsonl"))
    queries = read_queries_jsonl(require_file(folder / "queries.jsonl", "BEIR queries.jsonl"))
    qrels = read_qrels(find_split_file(folder, split))
    if not all_queries:
        queries = queries.subset(q for q in queries if q in qrels)
    return Dataset(corpus, queries, qrels, name=f"{Path(folder).name}/{split}")
