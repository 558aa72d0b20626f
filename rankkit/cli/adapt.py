"""``rankkit adapt --corpus DIR --out ADAPTER``: adapt a reranker to a corpus without labels (DUQGen-style)."""

from __future__ import annotations

from pathlib import Path

import typer

from . import app
from .common import Output, command


@command(app, "adapt")
def adapt(
    corpus: Path = typer.Option(..., help="the target corpus: BEIR corpus.jsonl or folder, TREC docs, TSV"),
    out: Path = typer.Option(..., help="adapter folder to write"),
    reranker: str = typer.Option("minilm-scifact", help="the reranker to adapt (folder or named model); it "
                                                        "also filters the generated pairs"),
    llm: str = typer.Option("smollm2", help="query generator: any HF causal LM (name, folder, GGUF)"),
    docs: int = typer.Option(200, min=1, help="documents to write queries for"),
    clusters: int = typer.Option(20, min=1, help="k-means clusters the documents are drawn from"),
    agree_rank: int = typer.Option(3, min=0, help="keep a pair when the reranker ranks its document within "
                                                  "this rank among its BM25 negatives (0: keep all)"),
    steps: int = typer.Option(200, min=1, help="LoRA training steps"),
    seed: int = typer.Option(0, help="seed of the sampling and the training"),
    threads: int = typer.Option(None, min=1, help="torch threads"),
    queries_file: Path = typer.Option(None, help="where the generated queries go (default <out>.queries.jsonl)"),
    *,
    ui: Output,
) -> None:
    """Generate queries for diverse documents with a local LLM, filter them, and train a LoRA adapter."""
    from ..datasets import read_corpus
    from ..training.adapt import AdaptOptions
    from ..training.adapt import adapt as run_adapt

    opts = AdaptOptions(n_docs=docs, clusters=clusters, llm=llm, agree_rank=agree_rank or None, steps=steps,
                        seed=seed, threads=threads, show_progress=ui.progress)
    from .train import _trainer_output

    with _trainer_output(ui):       # the HF Trainer logs to stdout: keep it for the result
        report = run_adapt(read_corpus(corpus), reranker, out, opts, queries_file=queries_file)
    ui.result(f"adapted {reranker} on {report['pairs']} generated pairs ({report['counts']}) in "
              f"{report['seconds']} s ({report['llm_calls']} LLM calls) -> {out}", report)
