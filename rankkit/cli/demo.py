"""``rankkit demo``: retrieve -> rerank -> generate on the embedded demo collection."""

from __future__ import annotations

import typer

from . import app
from .common import format_table


@app.command("demo")
def demo(
    query: str = typer.Option(None, help="ask your own question instead of the demo's first"),
    k: int = typer.Option(5, min=1, help="results to show"),
    reranker: str = typer.Option(None, help="cross-encoder folder or HF id (default: the project's trained reranker)"),
    model: str = typer.Option("smollm2", help="LLM that writes the answer"),
    passages: int = typer.Option(3, min=1, help="passages the LLM reads"),
    max_new_tokens: int = typer.Option(64, min=1, help="longest answer, in tokens"),
) -> None:
    """BM25 retrieves, a cross-encoder reranks, an LLM answers with citations; then metrics."""
    from ..demo import load_demo
    from ..errors import MissingResourceError
    from ..evaluation import evaluate
    from ..generators.generator import Generator
    from ..recipes import NoRerank
    from ..recipes import reranker as reranking_stage
    from ..retrievers.bm25 import BM25

    ds = load_demo()
    bm25 = BM25.build(ds.corpus)
    try:
        rerank = reranking_stage(model=reranker, corpus=ds.corpus, show_progress=False)
    except MissingResourceError as e:
        typer.secho(f"note: no cross-encoder reranking ({e}); the BM25 order is kept", fg="yellow")
        rerank = NoRerank()
    try:
        generator = Generator(model, corpus=ds.corpus, k=passages, max_new_tokens=max_new_tokens,
                              show_progress=False)
    except MissingResourceError as e:
        typer.secho(f"note: no answer will be generated ({e})", fg="yellow")
        generator = None
    ranking = bm25 % 20 >> rerank % 10
    pipe = ranking >> generator if generator is not None else ranking
    typer.echo(f"demo collection: {len(ds.corpus)} passages, {len(ds.queries)} questions")
    typer.echo(f"pipeline: {pipe!r}\n")

    if generator is not None:
        typer.echo(f"loading {model} ...")
        generator.load()
    question = query or next(iter(ds.queries.values()))
    typer.echo(f"query: {question}")
    result = pipe({"q": question})
    hits = result.run["q"][:k]
    rows = [[i, docid, f"{score:.3f}", ds.corpus.title(docid)] for i, (docid, score) in enumerate(hits, 1)]
    typer.echo(format_table(["rank", "docid", "score", "title"], rows) if rows else "(no hits)")
    if result.answers is not None:
        answer = result.answers["q"]
        typer.echo(f"\nanswer ({model}): {answer.error or answer.text or '(empty)'}")
        for n, docid in enumerate(answer.context, 1):
            mark = "cited" if docid in answer.citations else "     "
            typer.echo(f"  [{n}] {mark} {docid}  {ds.corpus.title(docid)}")
        if not answer.citations and not answer.error:
            typer.echo("  (the answer cites none of the passages)")
    typer.echo("\n" + format_table(["stage", "seconds"], [[s, t] for s, t in result.timings.items()]))

    systems = {"bm25": bm25 % 10, "bm25 >> rerank": ranking}
    rows = []
    for name, system in systems.items():
        scores = evaluate(system(ds.queries), ds.qrels, ["nDCG@10", "RR@10", "R@10"])
        rows.append([name, *scores.values()])
    typer.echo(f"\nranking over all {len(ds.queries)} demo questions:")
    typer.echo(format_table(["system", "nDCG@10", "RR@10", "R@10"], rows))
