"""``rankkit rerank RUN --corpus ... --queries ... --model ... --out RUN``."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from . import app
from .common import echo_json, load_queries


@app.command("rerank")
def rerank(
    run: Path = typer.Argument(..., help="TREC run file with the candidates"),
    corpus: Path = typer.Option(..., help="corpus: BEIR corpus.jsonl or folder, TREC docs, TSV"),
    queries: Path = typer.Option(..., help="queries: BEIR queries.jsonl or folder, TREC topics, qid<TAB>text"),
    model: str = typer.Option("minilm-scifact", help="cross-encoder: HF id or folder, rankkit adapter folder, or named model"),
    out: Path = typer.Option(..., help="TREC run file to write"),
    k: int = typer.Option(100, min=1, help="rerank the top k candidates of each query"),
    max_length: int = typer.Option(None, min=8, help="token window (query + document)"),
    batch_size: int = typer.Option(32, min=1),
    split: str = typer.Option(None, help="with a BEIR folder: only queries judged in this split"),
    interpolate: str = typer.Option(None, help="mix with the first stage: (1-w)*z(run) + w*z(model) per query; "
                                                "a weight w, or 'auto' for the model's own tuned weight"),
    dtype: str = typer.Option(None, help="float32 (default), bfloat16 or float16"),
    tag: str = typer.Option("rerank", help="run tag (6th column)"),
    quiet: bool = typer.Option(False, help="no progress bar"),
    as_json: bool = typer.Option(False, "--json", help="print a JSON summary"),
) -> None:
    """Rescore each query's top-k candidates with a cross-encoder and write a TREC run."""
    from ..datasets import read_corpus
    from ..rerankers.cross_encoder import CrossEncoder
    from ..types import Run

    weight = _weight(interpolate)
    qs = load_queries(queries, split)
    docs = read_corpus(corpus)
    first = Run.read_trec(run).with_queries(qs).top(k)
    ce = CrossEncoder(model, max_length=max_length, batch_size=batch_size, show_progress=not quiet,
                      corpus=docs, dtype=dtype, interpolate=weight)
    t0 = time.perf_counter()
    out_run = ce(qs, first)
    secs = time.perf_counter() - t0
    out_run.write_trec(out, tag=tag)
    summary = {"queries": len(out_run), "pairs": out_run.num_hits(), "seconds": round(secs, 1),
               "pairs_per_second": round(out_run.num_hits() / max(secs, 1e-9), 1),
               "truncated_pairs": ce.stats["truncated"], "empty_documents": ce.stats["empty"], "out": str(out)}
    if as_json:
        echo_json(summary)
    else:
        typer.echo(f"reranked {summary['pairs']} pairs of {summary['queries']} queries in {summary['seconds']} s "
                   f"({summary['pairs_per_second']} pairs/s; {summary['truncated_pairs']} documents truncated) -> {out}")


def _weight(text: str | None) -> float | str | None:
    """Checked before any model loads, so a typo costs nothing."""
    from ..errors import ConfigError
    from ..pipeline import check_interpolation

    if text is None or text == "auto":
        return text
    try:
        return check_interpolation(text)
    except ConfigError as e:
        raise typer.BadParameter(f"--interpolate: {e}") from None
