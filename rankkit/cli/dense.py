"""``rankkit index dense``."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import typer

from . import index_app


def _parse_options(pairs: list[str]) -> dict[str, int]:
    from ..errors import ConfigError

    options: dict[str, int] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"--option takes NAME=VALUE, got {pair!r}")
        try:
            options[name.strip()] = int(value)
        except ValueError:
            raise ConfigError(f"--option {name}: {value!r} is not an integer") from None
    return options


@index_app.command("dense")
def index_dense(
    corpus: Path = typer.Option(..., help="BEIR folder, corpus.jsonl, TREC SGML or docid<TAB>text TSV"),
    out: Path = typer.Option(..., help="index folder to write"),
    model: str = typer.Option("minilm", help="'minilm', a local model folder or an HF id (cached)"),
    index: str = typer.Option("flat", help="faiss index: flat, hnsw or ivfpq"),
    batch_size: int = typer.Option(32, min=1, help="texts per forward pass"),
    query_prefix: str = typer.Option(None, help="prepended to queries (default: the model's prompt)"),
    doc_prefix: str = typer.Option(None, help="prepended to documents (default: the model's prompt)"),
    processes: int = typer.Option(1, min=1, help="encoding processes"),
    option: list[str] = typer.Option(
        [], "--option", "-o",
        help="index option NAME=VALUE, repeatable: M, ef_construction, ef_search (hnsw); "
             "nlist, m, nbits, nprobe, refine (ivfpq)"),
    progress: bool = typer.Option(True, help="show progress bars"),
    as_json: bool = typer.Option(False, "--json", help="print the manifest as JSON"),
) -> None:
    """Encode a corpus with a bi-encoder and build a faiss index."""
    from ..datasets import read_corpus
    from ..retrievers.dense import DenseRetriever
    from ..retrievers.encoder import TruncationWarning

    options = _parse_options(option)
    t0 = time.perf_counter()
    docs = read_corpus(corpus)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)  # reported below, with the summary
        dense = DenseRetriever.build(docs, model=model, index=index, batch_size=batch_size,
                                     query_prefix=query_prefix, doc_prefix=doc_prefix,
                                     show_progress=progress, processes=processes, **options)
    dense.save(out)
    cfg = dense.config
    if as_json:
        typer.echo(json.dumps(json.loads((out / "rankkit.json").read_text()), indent=2))
        return
    params = ", ".join(f"{k}={v}" for k, v in {**cfg["index"], **dense.search_options}.items()
                       if k != "type")
    typer.echo(f"indexed {len(docs)} documents into {out}: {model}, {cfg['dimension']}-d, "
               f"{index}{f' ({params})' if params else ''}, {time.perf_counter() - t0:.1f}s")
    if cfg["truncated"]:
        typer.echo(f"note: {cfg['truncated']} documents were longer than the model's "
                   f"{cfg['max_seq_length']}-token window and were truncated")
