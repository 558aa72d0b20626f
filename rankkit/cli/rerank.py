"""``rankkit rerank RUN --corpus ... --queries ... [--reranker NAME] --model ... --out RUN``.

The reranker is resolved by name through ``rankkit.rerankers.registry``
(``cross-encoder`` by default, any registered name, or ``package.module:Class``);
``-o key=value`` passes further options to its constructor.
``--model BASE --adapter-folder a=DIR --adapter-folder b=DIR --adapter a`` loads
several adapters onto one base (``rerankers/multi_adapter.py``) and scores with one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from . import app
from .common import Output, command, load_queries, option_option, parse_options


@command(app, "rerank")
def rerank(
    run: Path = typer.Argument(..., help="TREC run file with the candidates"),
    corpus: Path = typer.Option(..., help="corpus: BEIR corpus.jsonl or folder, TREC docs, TSV"),
    queries: Path = typer.Option(..., help="queries: BEIR queries.jsonl or folder, TREC topics, qid<TAB>text"),
    out: Path = typer.Option(..., help="TREC run file to write"),
    reranker: str = typer.Option("cross-encoder", help="registered reranker name (cross-encoder, bi-encoder, "
                                                       "...) or package.module:Class"),
    model: str = typer.Option(None, help="the reranker's model: HF id or folder, rankkit adapter folder, or "
                                         "named model (default: the reranker's own, minilm-scifact for "
                                         "the cross-encoder)"),
    k: int = typer.Option(100, min=1, help="rerank the top k candidates of each query"),
    max_length: int = typer.Option(None, min=8, help="token window (query + document)"),
    batch_size: int = typer.Option(None, min=1, help="pairs per forward pass"),
    split: str = typer.Option(None, help="with a BEIR folder: only queries judged in this split"),
    interpolate: str = typer.Option(None, help="mix with the first stage: (1-w)*z(run) + w*z(model) per query; "
                                                "a weight w, or 'auto' for the model's own tuned weight"),
    dtype: str = typer.Option(None, help="float32 (default), bfloat16 or float16"),
    option: list[str] = option_option("key=value passed to the reranker (value read as YAML); repeatable"),
    tag: str = typer.Option("rerank", help="run tag (6th column)"),
    adapter: str = typer.Option(None, help="score with this adapter of the --adapter-folder ones "
                                           "(default: the first)"),
    adapter_folder: list[str] = typer.Option(None, "--adapter-folder", help="name=dir: a rankkit adapter folder "
                                             "loaded onto --model (the base); repeatable"),
    *,
    ui: Output,
) -> None:
    """Rescore each query's top-k candidates with a reranker and write a TREC run."""
    from ..datasets import read_corpus
    from ..rerankers.registry import make_reranker, reranker_class, reranker_options
    from ..types import Run

    weight = _weight(interpolate)  # checked before any model loads, so a typo costs nothing
    options = parse_options(option, "--option")
    options.update(_adapters(adapter, adapter_folder))
    for key, value in (("max_length", max_length), ("batch_size", batch_size), ("dtype", dtype)):
        if value is not None:
            options[key] = value
    accepted = reranker_options(reranker_class(reranker))
    if accepted is None or "show_progress" in accepted:
        options.setdefault("show_progress", ui.progress)
    qs = load_queries(queries, split)
    docs = read_corpus(corpus)
    first = Run.read_trec(run).with_queries(qs).top(k)
    stage = make_reranker(reranker, model=model, corpus=docs, interpolate=weight, **options)
    t0 = time.perf_counter()
    out_run = stage(qs, first)
    secs = time.perf_counter() - t0
    out_run.write_trec(out, tag=tag)
    stats = getattr(stage, "stats", {})
    summary: dict[str, Any] = {"reranker": reranker, "queries": len(out_run), "pairs": out_run.num_hits(),
                               "seconds": round(secs, 1),
                               "pairs_per_second": round(out_run.num_hits() / max(secs, 1e-9), 1)}
    for key, name in (("truncated", "truncated_pairs"), ("empty", "empty_documents")):
        if key in stats:
            summary[name] = stats[key]
    summary["out"] = str(out)
    summary.update(out_run.extras)   # e.g. Rank-R1's per-query reasoning (shown with --json)
    extra = f"; {summary['truncated_pairs']} documents truncated" if "truncated_pairs" in summary else ""
    ui.result(f"reranked {summary['pairs']} pairs of {summary['queries']} queries with {reranker} in "
              f"{summary['seconds']} s ({summary['pairs_per_second']} pairs/s{extra}) -> {out}", summary)


def _adapters(adapter: str | None, folders: list[str] | None) -> dict[str, Any]:
    """``--adapter-folder name=dir`` (repeatable) and ``--adapter NAME`` as CrossEncoder options."""
    if not folders:
        if adapter is not None:
            raise typer.BadParameter("--adapter names one of the --adapter-folder name=dir adapters")
        return {}
    found: dict[str, str] = {}
    for item in folders:
        name, sep, folder = item.partition("=")
        if not sep or not name.strip() or not folder.strip():
            raise typer.BadParameter(f"--adapter-folder takes name=dir, got {item!r}")
        found[name.strip()] = folder.strip()
    if adapter is not None and adapter not in found:
        raise typer.BadParameter(f"--adapter {adapter!r} is not one of the --adapter-folder names "
                                 f"({', '.join(found)})")
    return {"adapters": found, **({"adapter": adapter} if adapter is not None else {})}


def _weight(text: str | None) -> float | str | None:
    from ..errors import ConfigError
    from ..rerankers.base import check_interpolation

    if text is None or text == "auto":
        return text
    try:
        return check_interpolation(text)
    except ConfigError as e:
        raise typer.BadParameter(f"--interpolate: {e}") from None
