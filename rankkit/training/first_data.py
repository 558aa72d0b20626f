"""Training windows for FIRST: a first-stage run cut into windows, positions shuffled, target orders.

One example is one window: a query, its passages in shuffled positions (so
the model cannot learn "keep the first-stage order") and the target order
(indexes into those positions, best first). Targets come from the qrels
(relevant passages first, by grade, the rest in first-stage order; the grades
go with the window so the ranking loss treats equal grades as ties) or from a
teacher reranker's order (distillation, e.g. the project's cross-encoder).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError


@dataclass
class FirstExample:
    """One training window: ``passages`` in prompt order, ``order`` = target ranking (indexes, best first).

    ``grades`` (per prompt position, qrels targets only): passages of equal grade are ties, so
    the ranking loss skips their pairs; None = ``order`` is a full ranking (teacher targets).
    """

    query: str
    passages: list[str]
    order: list[int]
    qid: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    grades: list[int] | None = None


def shuffled_window(query: str, texts: Sequence[str], target: Sequence[int], rng: np.random.Generator,
                    qid: str | None = None, grades: Sequence[int] | None = None) -> FirstExample:
    """``texts`` placed at random positions; ``target`` (indexes into ``texts``, best first) and
    ``grades`` (per text) follow them."""
    perm = rng.permutation(len(texts))          # position p holds texts[perm[p]]
    where = np.empty(len(texts), dtype=np.int64)
    where[perm] = np.arange(len(texts))
    return FirstExample(query, [texts[i] for i in perm], [int(where[i]) for i in target], qid,
                        grades=None if grades is None else [int(grades[i]) for i in perm])


def qrels_order(docids: Sequence[str], judged: dict[str, int], min_grade: int = 1) -> list[int]:
    """Relevant candidates first (higher grade first), the others in first-stage order."""
    grade = [judged.get(d, 0) if judged.get(d, 0) >= min_grade else 0 for d in docids]
    return sorted(range(len(docids)), key=lambda i: (-grade[i], i))


def windows_from_run(dataset: Any, run: Any, window: int = 20, repeats: int = 1, seed: int = 0,
                     min_grade: int = 1, add_positive: bool = True, teacher: Any = None,
                     qids: Sequence[str] | None = None) -> tuple[list[FirstExample], dict[str, int]]:
    """One window per query and repeat: the run's top ``window``, shuffled, with a target order.

    With qrels targets a window without any relevant passage teaches only the
    first-stage order: ``add_positive`` puts the query's first judged passage in
    place of the last candidate (counted); otherwise such windows are skipped.
    ``teacher`` (a Reranker) orders the window instead of the qrels.
    """
    if window < 2:
        raise ConfigError(f"window must be >= 2, got {window}")
    rng = np.random.default_rng(seed)
    corpus = dataset.corpus
    wanted = [q for q in (qids if qids is not None else list(run.qids)) if q in run and q in dataset.queries]
    counts = {"windows": 0, "positives_added": 0, "skipped_no_relevant": 0, "teacher_windows": 0}
    teacher_run = None
    if teacher is not None:
        teacher_run = teacher.transform(dataset.queries.subset(wanted), run.with_queries(wanted).top(window))
    out: list[FirstExample] = []
    for _ in range(max(1, int(repeats))):
        for qid in wanted:
            docs = [d for d in run.docids(qid).tolist()[:window] if d in corpus]
            if len(docs) < 2:
                continue
            if teacher_run is not None:
                ranked = {d: r for r, d in enumerate(teacher_run.docids(qid).tolist())}
                target = sorted(range(len(docs)), key=lambda i: ranked.get(docs[i], len(docs) + i))
                grades = None                       # a full order: every pair counts
                counts["teacher_windows"] += 1
            else:
                judged = dict(dataset.qrels[qid]) if qid in dataset.qrels else {}
                positives = [d for d, g in sorted(judged.items(), key=lambda x: -x[1])
                             if g >= min_grade and d in corpus]
                if not any(d in positives for d in docs):
                    if not (add_positive and positives):
                        counts["skipped_no_relevant"] += 1
                        continue
                    docs[-1] = positives[0]
                    counts["positives_added"] += 1
                target = qrels_order(docs, judged, min_grade)
                grades = [judged.get(d, 0) if judged.get(d, 0) >= min_grade else 0 for d in docs]
            out.append(shuffled_window(dataset.queries[qid], [corpus[d] for d in docs], target, rng, qid,
                                       grades=grades))
    counts["windows"] = len(out)
    return out, counts


def first_source(path: Any, src: dict[str, Any], first_stage: Callable[[Any], Any],
                 cache_dir: Any = None) -> tuple[list[FirstExample], dict[str, Any]]:
    """The ``first`` data source: windows from the BEIR folder ``path`` (``src``: the config block;
    ``first_stage(dataset)``: the stage whose top ``window`` is cut into windows)."""
    import rankkit as rk

    from .data import cached_run, split_queries

    ds = rk.datasets.load_beir(path, split=src.get("split", "train"))
    judged = sorted(ds.qrels)
    if src.get("limit"):
        judged = judged[:int(src["limit"])]
    train_q, dev_q = split_queries(judged, float(src.get("dev_fraction", 0.0)), int(src.get("seed", 0)))
    window = int(src.get("window", 20))
    run = cached_run(first_stage(ds), ds.queries.subset(train_q), cache_dir, ds.corpus.fingerprint(), k=window)
    teacher = _teacher(src.get("teacher"), ds)
    examples, counts = windows_from_run(ds, run, window=window, repeats=int(src.get("repeats", 1)),
                                        seed=int(src.get("seed", 0)), min_grade=int(src.get("min_grade", 1)),
                                        add_positive=bool(src.get("add_positive", True)), teacher=teacher,
                                        qids=train_q)
    return examples, {"source": "first", "path": str(src["path"]), "window": window,
                      "train_queries": len(train_q), "dev_queries": len(dev_q),
                      "teacher": src.get("teacher"), **counts, "dev_qids": dev_q}


def _teacher(spec: Any, dataset: Any) -> Any:
    """A teacher reranker from ``teacher: NAME`` or ``{name, model, options}`` (None: qrels targets)."""
    if spec in (None, "qrels"):
        return None
    from ..rerankers.registry import make_reranker

    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) or not spec.get("name"):
        raise ConfigError(f"teacher must be a reranker name or {{name, model, options}}, got {spec!r}")
    return make_reranker(spec["name"], model=spec.get("model"), corpus=dataset.corpus,
                         **dict(spec.get("options") or {}))



__all__ = ["FirstExample", "shuffled_window", "qrels_order", "windows_from_run", "first_source"]
