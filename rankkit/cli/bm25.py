"""``rankkit index bm25``."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from . import index_app


@index_app.command("bm25")
def index_bm25(
    corpus: Path = typer.Option(..., help="BEIR folder, corpus.jsonl, TREC SGML or docid<TAB>text TSV"),
    out: Path = typer.Option(..., help="index folder to write"),
    k1: float = typer.Option(1.5, help="term-frequency saturation"),
    b: float = typer.Option(0.75, help="length normalisation"),
    stemmer: str = typer.Option("english", help="Snowball language, or 'none'"),
    stopwords: str = typer.Option("en", help="stopword list language, or 'none'"),
    backend: str = typer.Option("bm25s", help="bm25s (default) or lucene (needs the 'lucene' extra)"),
    progress: bool = typer.Option(True, help="show progress bars"),
) -> None:
    """Build a BM25 index of a corpus."""
    from ..datasets import read_corpus
    from ..retrievers.bm25 import BM25

    t0 = time.perf_counter()
    docs = read_corpus(corpus)
    index = BM25.build(docs, k1=k1, b=b, stemmer=None if stemmer == "none" else stemmer,
                       stopwords=None if stopwords == "none" else stopwords, backend=backend,
                       show_progress=progress)
    index.save(out)
    typer.echo(f"indexed {len(docs)} documents into {out} ({backend}, {time.perf_counter() - t0:.1f}s)")
