"""``rankkit index cur``: score anchor queries against a corpus with a cross-encoder (CUR search)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from . import index_app
from .common import Output, command


@command(index_app, "cur")
def index_cur(
    corpus: Path = typer.Option(..., help="BEIR folder, corpus.jsonl, TREC SGML or docid<TAB>text TSV"),
    queries: Path = typer.Option(..., help="anchor queries: BEIR folder or queries.jsonl, TREC topics or TSV"),
    out: Path = typer.Option(..., help="index folder to write"),
    model: str = typer.Option("minilm-scifact", help="cross-encoder: a shipped name or a local folder"),
    anchor_queries: int = typer.Option(None, min=1, help="use the first N anchor queries (default: all)"),
    k_i: int = typer.Option(50, min=1, help="anchor items scored per query"),
    k_r: int = typer.Option(50, min=0, help="approximate top items re-scored exactly per query"),
    rounds: int = typer.Option(1, min=1, help="adaptive rounds over the k_i budget (1: ANNCUR, >1: adaCUR)"),
    anchor_items: int = typer.Option(None, min=1, help="size of the fixed random anchor set (default: k_i)"),
    dtype: str = typer.Option("float32", help="storage of the anchor score matrix: float32 or float16"),
    max_length: int = typer.Option(None, min=8, help="cross-encoder window in tokens"),
    cache: Path = typer.Option(None, help="ScoreCache folder: reuse / keep exact anchor rows"),
    seed: int = typer.Option(0, help="seed of the random anchor items"),
    *,
    ui: Output,
) -> None:
    """Build a CUR index: exact cross-encoder scores of anchor queries against every document."""
    from ..datasets import read_corpus
    from ..datasets.formats import read_queries
    from ..rerankers.cross_encoder import CrossEncoder
    from ..retrievers.cur import CURRetriever

    t0 = time.perf_counter()
    docs = read_corpus(corpus)
    anchors = read_queries(queries)
    ce = CrossEncoder(model, max_length=max_length, show_progress=ui.progress)
    cur = CURRetriever.build(docs, ce, anchors, n_anchor_queries=anchor_queries, n_anchor_items=anchor_items,
                             k_i=k_i, k_r=k_r, rounds=rounds, dtype=dtype, cache=cache, seed=seed,
                             show_progress=ui.progress)
    cur.save(out)
    secs = time.perf_counter() - t0
    cfg = cur.config
    manifest = json.loads((out / "rankkit.json").read_text(encoding="utf-8"))
    ui.result(f"indexed {len(docs)} documents into {out}: {cfg['n_anchor_queries']} anchor queries x "
              f"{len(docs)} items ({cfg['index_calls']} cross-encoder calls, {cfg['r_bytes'] / 2**20:.1f} MiB "
              f"{dtype}), k_i={k_i} k_r={k_r} rounds={rounds}, anchor condition number "
              f"{cfg['condition_number']:.3g}, {secs:.1f}s",
              {**manifest, "out": str(out), "seconds": round(secs, 1)})
