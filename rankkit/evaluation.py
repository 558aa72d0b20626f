"""Evaluation through ir-measures, and paired significance tests between systems.

Measures are parsed by ir-measures (``nDCG@10``, ``AP``, ``R@100``, ``RR@10``,
``P(rel=2)@10``, ...). As in ir-measures and ``trec_eval -c``, a judged query
that a run has no results for counts as 0, never as missing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ConfigError, RankkitError
from .report import format_table
from .types import Dataset, Qrels, Queries, Result, Run, as_run

MeasureLike = Any  # an ir_measures Measure or a string it parses


def parse_measures(metrics: str | MeasureLike | Iterable[str | MeasureLike]) -> list[Any]:
    """Parse measure names with ir-measures; an unknown name is a ConfigError."""
    import ir_measures

    if isinstance(metrics, str) or not isinstance(metrics, Iterable):
        metrics = [metrics]
    out = []
    for m in metrics:
        if not isinstance(m, str):
            out.append(m)
            continue
        try:
            out.append(ir_measures.parse_measure(m))
            continue
        except Exception as e:  # ir-measures raises ValueError/NameError/SyntaxError
            error = e
        try:  # trec_eval names such as ndcg_cut_10 or map
            out.extend(ir_measures.parse_trec_measure(m))
        except Exception:
            raise ConfigError(
                f"unknown measure {m!r} ({error}); examples: nDCG@10, AP, R@100, RR@10, P@5, P(rel=2)@10"
            ) from None
    if not out:
        raise ConfigError("no measures given")
    return out


def _run_of(run: Run | Result | Mapping[str, Mapping[str, float]]) -> Run:
    """A Run from a Run, a Result, or a plain ``{qid: {docid: score}}`` (as ir-measures takes)."""
    if isinstance(run, Mapping):
        return Run.from_dict(run)
    return as_run(run)


def _prepare(qrels: Qrels | Mapping[str, Mapping[str, int]]) -> Qrels:
    q = Qrels.coerce(qrels)
    if len(q) == 0:
        raise RankkitError("qrels are empty: nothing to evaluate against")
    return q


def evaluate(run: Run | Result | Mapping, qrels: Qrels | Mapping, metrics: Any,
             per_query: bool = False) -> dict[str, Any]:
    """Score a run: ``{"nDCG@10": 0.67, ...}``.

    ``run`` may be a Run, a Result or a plain ``{qid: {docid: score}}``; ``qrels``
    a Qrels or a plain ``{qid: {docid: grade}}``.

    With ``per_query=True`` returns ``{qid: {measure: value}}`` for every judged query.
    """
    measures = parse_measures(metrics)
    return Evaluator(qrels, measures).evaluate(run, per_query=per_query)


class Evaluator:
    """Measures and qrels bound once, for scoring many runs (as in ``compare``)."""

    def __init__(self, qrels: Qrels | Mapping, metrics: Any):
        import ir_measures

        self.qrels = _prepare(qrels)
        self.measures = parse_measures(metrics)
        self._ev = ir_measures.evaluator(self.measures, self.qrels.to_ir_measures())

    def evaluate(self, run: Run | Result | Mapping, per_query: bool = False) -> dict[str, Any]:
        r = _run_of(run)
        if per_query:
            out: dict[str, dict[str, float]] = {q: {} for q in self.qrels}
            for m in self._ev.iter_calc(r):
                out.setdefault(m.query_id, {})[str(m.measure)] = float(m.value)
            return out
        agg = self._ev.calc_aggregate(r)
        return {str(m): float(agg[m]) for m in self.measures}  # in the order asked for

    def per_query_matrix(self, run: Run | Result | Mapping, qids: Sequence[str]) -> np.ndarray:
        """Per-query values as a ``[len(measures), len(qids)]`` array."""
        pq = self.evaluate(run, per_query=True)
        names = [str(m) for m in self.measures]
        return np.array([[pq[q].get(n, 0.0) for q in qids] for n in names], dtype=np.float64)


# ----------------------------------------------------------------------- compare
def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone)."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = len(p)
    order = np.argsort(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        val = p[idx] if math.isnan(p[idx]) else min(1.0, (m - rank) * p[idx])
        running = max(running, val) if not math.isnan(val) else running
        adjusted[idx] = val if math.isnan(val) else running
    return adjusted.tolist()


def paired_test(a: np.ndarray, b: np.ndarray, test: str = "t") -> float:
    """Two-sided p-value of a paired test between per-query scores ``a`` and ``b``."""
    from scipy import stats

    if np.allclose(a, b):
        return 1.0
    if test in ("t", "ttest", "t-test"):
        return float(stats.ttest_rel(a, b).pvalue)
    if test == "wilcoxon":
        return float(stats.wilcoxon(a, b).pvalue)
    raise ConfigError(f"unknown significance test {test!r} (choose 't' or 'wilcoxon')")


@dataclass
class Comparison:
    """Scores of several systems with paired tests against a baseline."""

    measures: list[str]
    systems: list[str]
    baseline: str
    means: dict[str, dict[str, float]]
    pvalues: dict[str, dict[str, float]] = field(default_factory=dict)
    per_query: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    qids: list[str] = field(default_factory=list, repr=False)
    test: str = "t"
    correction: str = "holm"
    alpha: float = 0.05

    def significant(self, system: str, measure: str) -> bool:
        p = self.pvalues.get(system, {}).get(measure)
        return p is not None and not math.isnan(p) and p < self.alpha

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline, "test": self.test, "correction": self.correction,
            "alpha": self.alpha, "queries": len(self.qids),
            "systems": {
                s: {m: {"mean": self.means[s][m],
                        **({"p": self.pvalues[s][m], "significant": self.significant(s, m)}
                           if s in self.pvalues else {})}
                    for m in self.measures}
                for s in self.systems
            },
        }

    def table(self) -> str:
        """A plain-text table: value per measure, Holm-adjusted p vs the baseline, * if < alpha."""
        head = ["system", *[c for m in self.measures for c in (m, "p")]]
        rows = []
        for s in self.systems:
            row = [s + (" (baseline)" if s == self.baseline else "")]
            for m in self.measures:
                v = self.means[s][m]
                if s == self.baseline:
                    row += [f"{v:.4f}", ""]
                else:
                    p = self.pvalues[s][m]
                    mark = "*" if self.significant(s, m) else ""
                    row += [f"{v:.4f}{mark}", "nan" if math.isnan(p) else f"{p:.3g}"]
            rows.append(row)
        lines = [format_table(head, rows)]
        lines.append(f"* significant at p < {self.alpha} ({self.test}-test vs {self.baseline!r}, "
                     f"{self.correction} correction across systems, {len(self.qids)} queries)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def compare(systems: Mapping[str, Any], dataset: Dataset | Qrels | Mapping, metrics: Any,
            baseline: str | None = None, test: str = "t", correction: str = "holm",
            alpha: float = 0.05, queries: Queries | None = None) -> Comparison:
    """Run (or take) several systems and compare them with paired significance tests.

    ``systems`` maps names to stages, runs, results or plain ``{qid: {docid: score}}``
    dicts; ``dataset`` is a Dataset, a Qrels or a plain ``{qid: {docid: grade}}``. Stages are run on
    ``dataset.queries``. P-values compare each system with ``baseline`` (the
    first by default), Holm-corrected across systems per measure.
    """
    if not systems:
        raise ConfigError("compare() needs at least one system")
    if correction not in ("holm", "none"):
        raise ConfigError(f"unknown correction {correction!r} (choose 'holm' or 'none')")
    names = list(systems)
    baseline = baseline if baseline is not None else names[0]
    if baseline not in systems:
        raise ConfigError(f"baseline {baseline!r} is not one of the systems {names}")
    qrels = dataset.qrels if isinstance(dataset, Dataset) else Qrels.coerce(dataset)
    if queries is None and isinstance(dataset, Dataset):
        queries = dataset.queries
    ev = Evaluator(qrels, metrics)
    mnames = [str(m) for m in ev.measures]
    qids = list(ev.qrels)

    per_query: dict[str, np.ndarray] = {}
    for name, system in systems.items():
        if isinstance(system, (Run, Result, Mapping)):
            run = _run_of(system)
        else:
            if queries is None:
                raise ConfigError(f"system {name!r} is a stage: pass a Dataset (or queries=) to run it")
            run = as_run(system(queries))
        per_query[name] = ev.per_query_matrix(run, qids)

    means = {s: dict(zip(mnames, per_query[s].mean(axis=1).tolist())) for s in names}
    others = [s for s in names if s != baseline]
    pvalues: dict[str, dict[str, float]] = {s: {} for s in others}
    for mi, m in enumerate(mnames):
        raw = [paired_test(per_query[s][mi], per_query[baseline][mi], test) for s in others]
        adj = holm(raw) if correction == "holm" else raw
        for s, p in zip(others, adj):
            pvalues[s][m] = p
    return Comparison(mnames, names, baseline, means, pvalues, per_query, qids,
                      test=test, correction=correction, alpha=alpha)
