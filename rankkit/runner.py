"""Run a ready pipeline file over a dataset: stage by stage, with progress, timings and a report.

A pipeline file is a small Python module defining ``build(dataset, **opts) -> Stage``
(see ``pipelines/README.md``); it may also set ``MEASURES`` (ir-measures names
for the run) and ``DESCRIPTION``. :func:`run_pipeline_file` loads the dataset,
builds the stage, runs it with one progress bar per stage, and writes the run
(TREC), the answers (JSONL) and a metrics report (JSON).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib.util
import inspect
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import ConfigError, MissingResourceError, RankkitError
from .io import PathLike, atomic_path
from .pipeline import Pipeline, Stage, run_stages
from .quiet import quiet_transformers
from .types import Answer, Dataset, Queries, Result, Run

DEFAULT_MEASURES = ["nDCG@10", "R@10", "R@100"]
PIPELINES_DIR = Path(__file__).resolve().parent.parent / "pipelines"


def find_pipeline(spec: PathLike) -> Path:
    """A pipeline file path, or the name of one in the checkout's ``pipelines/`` folder."""
    p = Path(spec)
    if p.is_file():
        return p
    for cand in (PIPELINES_DIR / p.name, PIPELINES_DIR / f"{p.name}.py"):
        if p.parent == Path(".") and cand.is_file():
            return cand
    known = sorted(f.stem for f in PIPELINES_DIR.glob("*.py")) if PIPELINES_DIR.is_dir() else []
    raise MissingResourceError(f"pipeline file not found: {p}"
                               + (f" (ready pipelines: {', '.join(known)})" if known else ""))


def load_pipeline_module(path: PathLike) -> ModuleType:
    """Import a pipeline file; it must define ``build(dataset, **opts)``."""
    p = find_pipeline(path)
    spec = importlib.util.spec_from_file_location(f"rankkit_pipeline_{p.stem}", p)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import pipeline file {p}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "build", None)):
        raise ConfigError(f"{p} defines no build(dataset, **opts) function")
    return module


def build_stage(module: ModuleType, dataset: Dataset, opts: Mapping[str, Any]) -> Stage:
    """Call the module's ``build`` with ``opts``; an unknown option is a clear error."""
    params = inspect.signature(module.build).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = [n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_KEYWORD][1:]
    unknown = [k for k in opts if k not in named]
    if unknown and not takes_any:
        raise ConfigError(f"pipeline {module.__file__} takes no option(s) {unknown} "
                          f"(options: {', '.join(named) or 'none'})")
    stage = module.build(dataset, **opts)
    if not isinstance(stage, Stage):
        raise ConfigError(f"{module.__file__}: build() returned {type(stage).__name__}, not a Stage")
    return stage


def execute(stage: Stage, queries: Queries, progress: bool = True,
            chunk_size: int | None = 64) -> Result:
    """Run ``stage`` like ``stage(queries)``, one stage at a time over chunks of queries.

    The stage loop itself is :func:`~rankkit.pipeline.run_stages` (the one
    :class:`~rankkit.pipeline.Pipeline` uses); here each stage goes over chunks
    of queries under a progress bar counting queries, and gets a wall-time entry
    in ``Result.timings`` (keyed ``"<i>:<name>"``).
    """
    from tqdm.auto import tqdm

    stages = stage.stages if isinstance(stage, Pipeline) else [stage]
    qids = list(queries)
    step = chunk_size or max(1, len(qids))
    if not progress:
        quiet_transformers()

    def chunked(i: int, st: Stage, run: Run | None) -> Result:
        rankings: dict[str, Any] = {}
        got: dict[str, Answer] = {}
        extras: dict[str, Any] = {}     # per-query details (Compressor texts, reasoning) travel with each chunk
        with tqdm(total=len(qids), desc=f"[{i + 1}/{len(stages)}] {st.name}", unit="q",
                  disable=not progress) as bar:
            for start in range(0, len(qids), step):
                chunk = qids[start:start + step]
                sub = run.with_queries(chunk) if run is not None else None
                if sub is not None:
                    sub.extras = {k: {q: v[q] for q in chunk if q in v} for k, v in run.extras.items()
                                  if isinstance(v, dict)}
                out = st.transform(queries.subset(chunk), sub)
                r = out.run if isinstance(out, Result) else out
                for k, v in r.extras.items():
                    if isinstance(v, dict):
                        extras.setdefault(k, {}).update(v)
                if isinstance(out, Result) and out.answers is not None:
                    got.update(out.answers)
                for q in chunk:
                    rankings[q] = r.arrays(q) if q in r else ((), ())
                bar.update(len(chunk))
        merged = Run(rankings, name=st.name)
        merged.extras = extras
        return Result(run=merged, answers=got or None)

    quiet = [s for s in stages if getattr(s, "show_progress", None) is True]
    for s in quiet:  # the per-stage bars replace the stages' own
        s.show_progress = False
    try:
        return run_stages(stages, queries, call=chunked)
    finally:
        for s in quiet:
            s.show_progress = True


def answer_record(a: Answer, query: str) -> dict[str, Any]:
    return {"qid": a.qid, "query": query, **{k: v for k, v in dataclasses.asdict(a).items() if k != "qid"}}


def run_pipeline_file(pipeline: PathLike, dataset: PathLike, split: str = "test",
                      out: PathLike | None = None, limit: int | None = None,
                      opts: Mapping[str, Any] | None = None, measures: Sequence[str] | None = None,
                      verdicts: PathLike | None = None, references: PathLike | None = None,
                      progress: bool = True, chunk_size: int | None = 64) -> dict[str, Any]:
    """Load, build, run and evaluate; write ``run.trec``, ``answers.jsonl``, ``metrics.json``.

    Returns the report written to ``metrics.json``. Verdicts default to the
    dataset folder's ``claims.jsonl`` (used when the generator classifies).
    """
    from .datasets import load_beir
    from .evaluation import evaluate, parse_measures
    from .rag_eval import evaluate_rag, load_references, load_verdicts

    t_start = time.perf_counter()
    module = load_pipeline_module(pipeline)
    measures = list(measures or getattr(module, "MEASURES", DEFAULT_MEASURES))
    parse_measures(measures)
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {limit}")
    ds = load_beir(dataset, split=split)
    if limit is not None:
        ds = Dataset(ds.corpus, ds.queries.head(limit), ds.qrels, name=ds.name)
    ds.qrels = ds.qrels.subset(ds.queries)
    t0 = time.perf_counter()
    stage = build_stage(module, ds, dict(opts or {}))
    build_s = time.perf_counter() - t0
    result = execute(stage, ds.queries, progress=progress, chunk_size=chunk_size)

    out_dir = Path(out) if out is not None else Path("runs") / f"{find_pipeline(pipeline).stem}"
    out_dir.mkdir(parents=True, exist_ok=True)
    result.run.write_trec(out_dir / "run.trec", tag=find_pipeline(pipeline).stem)
    report: dict[str, Any] = {
        "pipeline": str(find_pipeline(pipeline)), "dataset": str(dataset), "split": split,
        "queries": len(ds.queries), "limit": limit, "options": dict(opts or {}),
        "stages": stage.describe(), "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "files": {"run": str(out_dir / "run.trec")},
    }
    if len(ds.qrels):
        report["retrieval"] = evaluate(result.run, ds.qrels, measures)
    last = stage.stages[-1] if isinstance(stage, Pipeline) else stage
    if result.answers is not None:
        with atomic_path(out_dir / "answers.jsonl") as fh:
            for qid, a in result.answers.items():
                fh.write(json.dumps(answer_record(a, ds.queries[qid]), ensure_ascii=False) + "\n")
        report["files"]["answers"] = str(out_dir / "answers.jsonl")
        report["generator"] = dict(getattr(last, "stats", {}))
        gold: dict[str, Any] = {}
        if len(ds.qrels):
            gold["qrels"] = ds.qrels
        if getattr(last, "mode", None) == "classify":
            vpath = Path(verdicts) if verdicts else Path(dataset) / "claims.jsonl"
            if verdicts or vpath.exists():
                v = load_verdicts(vpath, split=split)
                gold["verdicts"] = {q: v[q] for q in ds.queries if q in v}
                gold["labels"] = list(last.labels)
        if references:
            refs = load_references(references)
            gold["references"] = {q: refs[q] for q in ds.queries if q in refs}
        if gold.get("verdicts") == {} or gold.get("references") == {}:
            raise RankkitError("none of the run's queries has a gold verdict/reference")
        if gold:
            report["rag"] = evaluate_rag(result.answers, **gold)
    report["timings"] = {"build": build_s, **result.timings,
                         "total": time.perf_counter() - t_start}
    report["files"]["metrics"] = str(out_dir / "metrics.json")
    with atomic_path(out_dir / "metrics.json") as fh:
        json.dump(report, fh, indent=2, default=str)
    return report
