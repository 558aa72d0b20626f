"""``rankkit simulate-clicks``: simulated click sessions over a logging run, as a click log."""

from __future__ import annotations

from pathlib import Path

import typer

from . import app
from .common import Output, command, format_table


@command(app, "simulate-clicks")
def simulate_clicks(
    run: Path = typer.Argument(..., help="logging ranker's TREC run file (its rankings are displayed)"),
    qrels: Path = typer.Option(..., help="graded qrels: TREC file, BEIR TSV, or BEIR folder (with --split)"),
    out: Path = typer.Option(..., help="click log to write (.jsonl or .parquet)"),
    sessions: int = typer.Option(100_000, min=1, help="number of sessions to draw"),
    model: str = typer.Option("pbm", help="click model: pbm (position-based) or cascade"),
    eta: float = typer.Option(1.0, min=0.0, help="PBM examination (1/rank)^eta (or curve^eta)"),
    curve: str = typer.Option(None, help="PBM examination curve: 'ultra' or comma-separated probabilities"),
    k: int = typer.Option(10, min=1, help="results shown per session (top k of the run)"),
    max_grade: int = typer.Option(None, min=1, help="highest relevance grade (default: highest in the qrels)"),
    eps_minus: float = typer.Option(0.1, help="click probability of an examined irrelevant result"),
    eps_plus: float = typer.Option(1.0, help="click probability of an examined result of the highest grade"),
    queries: Path = typer.Option(None, help="queries file or BEIR folder, to store query texts in the log"),
    split: str = typer.Option("test", help="with a BEIR folder for --qrels: the qrels split"),
    seed: int = typer.Option(0, help="random seed"),
    *,
    ui: Output,
) -> None:
    """Draw click sessions (PBM or cascade) over a run's top k for queries with qrels."""
    from ..errors import ConfigError
    from ..types import Run
    from ..ultr.clicklog import log_format, write_click_log
    from ..ultr.simulate import get_click_model
    from ..ultr.simulate import simulate_clicks as simulate
    from .common import load_qrels, load_queries

    log_format(out)  # an unknown output format fails before any work
    judged = load_qrels(qrels, split)
    top = max((g for docs in judged.values() for g in docs.values()), default=0)
    grade = max_grade if max_grade is not None else max(int(top), 1)
    points = None
    if curve is not None:
        if curve.strip().lower() == "ultra":
            points = "ultra"
        else:
            try:
                points = [float(x) for x in curve.split(",") if x.strip()]
            except ValueError:
                raise ConfigError(f"--curve must be 'ultra' or comma-separated numbers, got {curve!r}") from None
    options = {"max_grade": grade, "eps_minus": eps_minus, "eps_plus": eps_plus}
    if model.lower() == "pbm":
        options.update(eta=eta, curve=points)
    elif curve is not None:
        raise ConfigError("--curve applies to the pbm model only")
    click_model = get_click_model(model, **options)
    texts = load_queries(queries) if queries is not None else None
    log = simulate(Run.read_trec(run), judged, sessions, click_model, k=k, seed=seed, queries=texts)
    write_click_log(log, out)
    ctr = log.ctr_by_position()
    summary = {"out": str(out), "sessions": len(log), "queries": len(set(log.qids.tolist())),
               "clicks_per_session": round(float(log.clicks.sum() / len(log)), 4),
               "sessions_without_clicks": int((log.clicks.sum(1) == 0).sum()),
               "model": click_model.describe(), "seed": seed,
               "ctr_by_rank": [round(float(x), 4) for x in ctr]}
    ui.result(f"wrote {summary['sessions']} sessions over {summary['queries']} queries to {out} "
              f"({summary['clicks_per_session']} clicks per session, "
              f"{summary['sessions_without_clicks']} sessions without clicks)", summary)
    if not ui.as_json:
        ui.note("model: " + ", ".join(f"{k}={v}" for k, v in click_model.describe().items()))
        ui.note(format_table(["rank", "CTR"], [[i + 1, float(x)] for i, x in enumerate(ctr)]))
