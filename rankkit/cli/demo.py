"""``rankkit demo``: the main job on the embedded demo collection."""

from __future__ import annotations

import typer

from . import app
from .common import format_table


@app.command("demo")
def demo(
    query: str = typer.Option(None, help="ask your own question instead of the demo's first"),
    k: int = typer.Option(5, min=1, help="results to show"),
) -> None:
    """Index the demo corpus with BM25, search all its queries, show a ranking and metrics."""
    from ..demo import load_demo
    from ..evaluation import evaluate
    from ..retrievers.bm25 import BM25

    ds = load_demo()
    bm25 = BM25.build(ds.corpus)
    pipe = bm25 % 10
    typer.echo(f"demo collection: {len(ds.corpus)} passages, {len(ds.queries)} questions")
    typer.echo(f"pipeline: {pipe!r}\n")

    question = query or next(iter(ds.queries.values()))
    typer.echo(f"query: {question}")
    hits = pipe.search(question, k=k)
    rows = [[i, docid, f"{score:.3f}", ds.corpus.title(docid)] for i, (docid, score) in enumerate(hits, 1)]
    typer.echo(format_table(["rank", "docid", "score", "title"], rows) if rows else "(no hits)")

    run = pipe(ds.queries)
    scores = evaluate(run, ds.qrels, ["nDCG@10", "RR@10", "R@10"])
    typer.echo(f"\nover all {len(ds.queries)} demo questions:")
    typer.echo(format_table(["system", *scores], [["bm25", *scores.values()]]))
