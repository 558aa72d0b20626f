"""``rankkit index dense``."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

import typer

from . import index_app
from .common import Output, command, option_option, parse_options


def _int_options(options: dict[str, Any]) -> dict[str, int]:
    """faiss index options are integers: say which one is not."""
    from ..errors import ConfigError

    for name, value in options.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"--option {name}: {value!r} is not an integer")
    return options


@command(index_app, "dense")
def index_dense(
    corpus: Path = typer.Option(..., help="BEIR folder, corpus.jsonl, TREC SGML or docid<TAB>text TSV"),
    out: Path = typer.Option(..., help="index folder to write"),
    model: str = typer.Option("minilm", help="'minilm', a local model folder or an HF id (cached)"),
    index: str = typer.Option("flat", help="faiss index: flat, hnsw or ivfpq"),
    batch_size: int = typer.Option(32, min=1, help="texts per forward pass"),
    query_prefix: str = typer.Option(None, help="prepended to queries (default: the model's prompt)"),
    doc_prefix: str = typer.Option(None, help="prepended to documents (default: the model's prompt)"),
    processes: int = typer.Option(1, min=1, help="encoding processes"),
    option: list[str] = option_option(
        "index option NAME=VALUE (an integer), repeatable: M, ef_construction, ef_search (hnsw); "
        "nlist, m, nbits, nprobe, refine (ivfpq)"),
    *,
    ui: Output,
) -> None:
    """Encode a corpus with a bi-encoder and build a faiss index."""
    from ..datasets import read_corpus
    from ..retrievers.dense import DenseRetriever
    from ..retrievers.encoder import TruncationWarning

    options = _int_options(parse_options(option, "--option"))
    t0 = time.perf_counter()
    docs = read_corpus(corpus)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)  # reported below, with the summary
        dense = DenseRetriever.build(docs, model=model, index=index, batch_size=batch_size,
                                     query_prefix=query_prefix, doc_prefix=doc_prefix,
                                     show_progress=ui.progress, processes=processes, **options)
    dense.save(out)
    secs = time.perf_counter() - t0
    cfg = dense.config
    manifest = json.loads((out / "rankkit.json").read_text(encoding="utf-8"))
    params = ", ".join(f"{k}={v}" for k, v in {**cfg["index"], **dense.search_options}.items()
                       if k != "type")
    ui.result(f"indexed {len(docs)} documents into {out}: {model}, {cfg['dimension']}-d, "
                f"{index}{f' ({params})' if params else ''}, {secs:.1f}s",
                {**manifest, "out": str(out), "seconds": round(secs, 1)})
    if cfg["truncated"]:
        ui.note(f"note: {cfg['truncated']} documents were longer than the model's "
                  f"{cfg['max_seq_length']}-token window and were truncated")
