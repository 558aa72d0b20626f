"""``rankkit demo``: retrieve -> rerank -> generate on the embedded demo collection."""

from __future__ import annotations

from typing import Any

import typer

from . import app
from .common import Output, command, format_table


@command(app, "demo")
def demo(
    query: str = typer.Option(None, help="ask your own question instead of the demo's first"),
    k: int = typer.Option(5, min=1, help="results to show"),
    reranker: str = typer.Option(None, help="cross-encoder folder or HF id (default: the project's trained reranker)"),
    model: str = typer.Option("smollm2", help="LLM that writes the answer"),
    passages: int = typer.Option(3, min=1, help="passages the LLM reads"),
    max_new_tokens: int = typer.Option(64, min=1, help="longest answer, in tokens"),
    *,
    ui: Output,
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
    notes: list[str] = []
    try:
        rerank = reranking_stage(model=reranker, corpus=ds.corpus, show_progress=False)
    except MissingResourceError as e:
        notes.append(f"no cross-encoder reranking ({e}); the BM25 order is kept")
        rerank = NoRerank()
    try:
        generator = Generator(model, corpus=ds.corpus, k=passages, max_new_tokens=max_new_tokens,
                              show_progress=False)
    except MissingResourceError as e:
        notes.append(f"no answer will be generated ({e})")
        generator = None
    ranking = bm25 % 20 >> rerank % 10
    pipe = ranking >> generator if generator is not None else ranking
    ui.note(f"demo collection: {len(ds.corpus)} passages, {len(ds.queries)} questions")
    ui.note(f"pipeline: {pipe!r}\n")

    if generator is not None:
        ui.note(f"loading {model} ...")
        generator.load()
    question = query or next(iter(ds.queries.values()))
    result = pipe({"q": question})
    hits = [{"rank": i, "docid": docid, "score": float(score), "title": ds.corpus.title(docid)}
            for i, (docid, score) in enumerate(result.run["q"][:k], 1)]
    answer: dict[str, Any] | None = None
    if result.answers is not None:
        a = result.answers["q"]
        answer = {"model": model, "text": a.text, "error": a.error, "context": list(a.context),
                  "citations": list(a.citations)}
    systems = {"bm25": bm25 % 10, "bm25 >> rerank": ranking}
    measures = ["nDCG@10", "RR@10", "R@10"]
    ranking_scores = {name: evaluate(system(ds.queries), ds.qrels, measures)
                      for name, system in systems.items()}
    data = {"query": question, "hits": hits, "answer": answer, "timings": dict(result.timings),
            "ranking": ranking_scores, "notes": notes}
    ui.result(_text(data, ds, len(ds.queries), measures), data)


def _text(data: dict[str, Any], ds: Any, n_queries: int, measures: list[str]) -> str:
    rows = [[h["rank"], h["docid"], f"{h['score']:.3f}", h["title"]] for h in data["hits"]]
    lines = [*(f"note: {n}" for n in data["notes"]), f"query: {data['query']}",
             format_table(["rank", "docid", "score", "title"], rows) if rows else "(no hits)"]
    answer = data["answer"]
    if answer is not None:
        lines.append(f"\nanswer ({answer['model']}): {answer['error'] or answer['text'] or '(empty)'}")
        for n, docid in enumerate(answer["context"], 1):
            mark = "cited" if docid in answer["citations"] else "     "
            lines.append(f"  [{n}] {mark} {docid}  {ds.corpus.title(docid)}")
        if not answer["citations"] and not answer["error"]:
            lines.append("  (the answer cites none of the passages)")
    lines.append("\n" + format_table(["stage", "seconds"], [[s, t] for s, t in data["timings"].items()]))
    lines.append(f"\nranking over all {n_queries} demo questions:")
    lines.append(format_table(["system", *measures],
                              [[name, *scores.values()] for name, scores in data["ranking"].items()]))
    return "\n".join(lines)
