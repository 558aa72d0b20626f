"""``rankkit run``: a ready pipeline file over a dataset -> run, answers, metrics report."""

from __future__ import annotations

from pathlib import Path

import typer

from . import app
from .common import echo_json, format_table


@app.command("run")
def run(
    pipeline: Path = typer.Argument(..., help="pipeline file (pipelines/NAME.py) or a ready pipeline's name"),
    dataset: Path = typer.Option(..., help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/)"),
    split: str = typer.Option("test", help="qrels split whose queries to run"),
    out: Path = typer.Option(None, help="output folder (default: runs/<pipeline>)"),
    limit: int = typer.Option(None, min=1, help="only the first N queries (a quick slice)"),
    option: list[str] = typer.Option([], "-o", "--option", help="pipeline option key=value (YAML value), repeatable"),
    measure: list[str] = typer.Option([], "-m", "--measure", help="ir-measures name for the run, repeatable"),
    verdicts: Path = typer.Option(None, help="gold verdicts JSONL (default: <dataset>/claims.jsonl if present)"),
    references: Path = typer.Option(None, help="reference answers JSONL (query-id, answers)"),
    chunk_size: int = typer.Option(64, min=1, help="queries per step of each stage's progress bar"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Build the pipeline, run it over the dataset's queries, write run/answers/metrics."""
    from ..runner import parse_options, run_pipeline_file

    report = run_pipeline_file(pipeline, dataset, split=split, out=out, limit=limit,
                               opts=parse_options(option), measures=measure or None,
                               verdicts=verdicts, references=references,
                               progress=not quiet, chunk_size=chunk_size)
    if as_json:
        echo_json(report)
        return
    typer.echo(f"pipeline: {report['pipeline']} on {report['dataset']} ({report['split']}, "
               f"{report['queries']} queries)")
    scores = {**report.get("retrieval", {}), **{k: v for k, v in report.get("rag", {}).items()
                                                 if not k.endswith("_n") and k != "verdict_failed"}}
    if scores:
        typer.echo(format_table(["measure", "value"], [[k, float(v)] for k, v in scores.items()]))
    gen = report.get("generator")
    if gen:
        typer.echo("generator: " + ", ".join(f"{k} {v}" for k, v in gen.items()))
    typer.echo(format_table(["stage", "seconds"], [[k, float(v)] for k, v in report["timings"].items()]))
    typer.echo("wrote " + ", ".join(report["files"].values()))
