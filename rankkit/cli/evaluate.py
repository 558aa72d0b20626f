"""``rankkit eval``: score one or several TREC runs, with significance tests."""

from __future__ import annotations

from pathlib import Path

import typer

from . import app
from .common import Output, command, format_table, load_qrels


@command(app, "eval")
def eval_runs(
    runs: list[Path] = typer.Argument(..., help="TREC run file(s); with several, the first is the baseline"),
    qrels: Path = typer.Option(..., help="qrels file (TREC or BEIR TSV) or a BEIR folder"),
    measure: list[str] = typer.Option(["nDCG@10"], "-m", "--measure", help="ir-measures name, repeatable"),
    split: str = typer.Option("test", help="with a BEIR folder: the qrels split"),
    per_query: bool = typer.Option(False, "--per-query", help="print one row per query"),
    test: str = typer.Option("t", help="paired test for several runs: t or wilcoxon"),
    *,
    ui: Output,
) -> None:
    """Evaluate runs against qrels (ir-measures); several runs get paired tests vs the first."""
    from ..evaluation import compare, evaluate, parse_measures
    from ..types import Run

    measure = [str(m) for m in parse_measures(measure)]  # canonical names (e.g. ndcg_cut_10 -> nDCG@10)
    judged = load_qrels(qrels, split)
    loaded = {}
    for path in runs:
        name = path.name if path.name not in loaded else str(path)
        loaded[name] = Run.read_trec(path, name=name)

    if per_query:
        result = {name: evaluate(r, judged, measure, per_query=True) for name, r in loaded.items()}
        tables = []
        for name, pq in result.items():
            rows = [[q, *[vals.get(m, 0.0) for m in measure]] for q, vals in pq.items()]
            tables.append((f"# {name}\n" if len(result) > 1 else "")
                          + format_table(["qid", *measure], rows))
        ui.result("\n".join(tables), result)
        return

    if len(loaded) == 1:
        name, r = next(iter(loaded.items()))
        scores = evaluate(r, judged, measure)
        ui.result(format_table(["run", *scores], [[name, *scores.values()]]), {name: scores})
        return

    comparison = compare(loaded, judged, measure, test=test)
    ui.result(comparison.table(), comparison.to_dict())
