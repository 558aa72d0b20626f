"""``rankkit run``: a ready pipeline file over a dataset -> run, answers, metrics report."""

from __future__ import annotations

from pathlib import Path

import typer

from . import app
from .common import Output, command, format_table, option_option, parse_options


@command(app, "run")
def run(
    pipeline: Path = typer.Argument(..., help="pipeline file (pipelines/NAME.py) or a ready pipeline's name"),
    dataset: Path = typer.Option(..., help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/)"),
    split: str = typer.Option("test", help="qrels split whose queries to run"),
    out: Path = typer.Option(None, help="output folder (default: runs/<pipeline>)"),
    limit: int = typer.Option(None, min=1, help="only the first N queries (a quick slice)"),
    option: list[str] = option_option("pipeline option key=value (YAML value), repeatable"),
    measure: list[str] = typer.Option([], "-m", "--measure", help="ir-measures name for the run, repeatable"),
    verdicts: Path = typer.Option(None, help="gold verdicts JSONL (default: <dataset>/claims.jsonl if present)"),
    references: Path = typer.Option(None, help="reference answers JSONL (query-id, answers)"),
    chunk_size: int = typer.Option(64, min=1, help="queries per step of each stage's progress bar"),
    *,
    ui: Output,
) -> None:
    """Build the pipeline, run it over the dataset's queries, write run/answers/metrics."""
    from ..runner import run_pipeline_file

    report = run_pipeline_file(pipeline, dataset, split=split, out=out, limit=limit,
                               opts=parse_options(option, "pipeline option"),
                               measures=measure or None, verdicts=verdicts, references=references,
                               progress=ui.progress, chunk_size=chunk_size)
    if ui.as_json:
        ui.result("", report)
        return
    lines = [f"pipeline: {report['pipeline']} on {report['dataset']} ({report['split']}, "
             f"{report['queries']} queries)"]
    scores = {**report.get("retrieval", {}), **{k: v for k, v in report.get("rag", {}).items()
                                                 if not k.endswith("_n") and k != "verdict_failed"}}
    if scores:
        lines.append(format_table(["measure", "value"], [[k, float(v)] for k, v in scores.items()]))
    gen = report.get("generator")
    if gen:
        lines.append("generator: " + ", ".join(f"{k} {v}" for k, v in gen.items()))
    lines.append(format_table(["stage", "seconds"], [[k, float(v)] for k, v in report["timings"].items()]))
    lines.append("wrote " + ", ".join(report["files"].values()))
    ui.result("\n".join(lines), report)
