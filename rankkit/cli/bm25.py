"""``rankkit index bm25``."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import typer

from . import index_app
from .common import Output, command


@command(index_app, "bm25")
def index_bm25(
    corpus: Path = typer.Option(..., help="BEIR folder, corpus.jsonl, TREC SGML or docid<TAB>text TSV"),
    out: Path = typer.Option(..., help="index folder to write"),
    k1: float = typer.Option(1.5, help="term-frequency saturation"),
    b: float = typer.Option(0.75, help="length normalisation"),
    stemmer: str = typer.Option("english", help="Snowball language, or 'none'"),
    stopwords: str = typer.Option("en", help="stopword list language, or 'none'"),
    backend: str = typer.Option("bm25s", help="bm25s (default) or lucene (needs the 'lucene' extra)"),
    *,
    ui: Output,
    progress: bool = typer.Option(True, hidden=True, help="old spelling: --no-progress is --quiet"),
) -> None:
    """Build a BM25 index of a corpus."""
    if not progress:
        ui = dataclasses.replace(ui, quiet=True)
    from ..datasets import read_corpus
    from ..retrievers.bm25 import BM25

    t0 = time.perf_counter()
    docs = read_corpus(corpus)
    # bm25s's tokenizer/index bars are the library's: shown with --verbose only
    index = BM25.build(docs, k1=k1, b=b, stemmer=None if stemmer == "none" else stemmer,
                       stopwords=None if stopwords == "none" else stopwords, backend=backend,
                       show_progress=ui.verbose and ui.progress)
    index.save(out)
    secs = time.perf_counter() - t0
    manifest = json.loads((out / "rankkit.json").read_text(encoding="utf-8"))
    ui.result(f"indexed {len(docs)} documents into {out} ({backend}, {secs:.1f}s)",
                {**manifest, "out": str(out), "seconds": round(secs, 1)})
