"""``rankkit search``: run any index folder over a query file."""

from __future__ import annotations

from pathlib import Path

import typer

from . import app
from .common import Output, command, load_queries


@command(app, "search")
def search(
    index: Path = typer.Argument(..., help="index folder (BM25, dense, ...)"),
    queries: Path = typer.Option(..., help="queries: BEIR queries.jsonl or folder, TREC topics, qid<TAB>text"),
    out: Path = typer.Option(..., help="TREC run file to write"),
    k: int = typer.Option(100, min=1, help="results per query"),
    split: str = typer.Option(None, help="with a BEIR folder: only queries judged in this split"),
    tag: str = typer.Option(None, help="run tag (6th column); defaults to the index kind"),
    *,
    ui: Output,
) -> None:
    """Retrieve the top k documents for every query and write a TREC run."""
    from ..retrievers import load_index

    qs = load_queries(queries, split)
    retriever = load_index(index)
    if hasattr(retriever, "show_progress"):
        retriever.show_progress = ui.progress
    run = (retriever % k)(qs)
    run.write_trec(out, tag=tag or retriever.name)
    empty = sum(1 for q in run.qids if len(run.docids(q)) == 0)
    ui.result(f"wrote {len(run)} queries, {run.num_hits()} hits to {out}"
                + (f" ({empty} queries without hits)" if empty else ""),
                {"queries": len(run), "hits": run.num_hits(), "empty_queries": empty,
                 "index": str(index), "k": k, "out": str(out)})
