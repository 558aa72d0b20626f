"""RAG measures: verdicts, answers, citations and the generator's context.

``evaluate_rag(answers, verdicts=..., references=..., qrels=...)`` computes the
measures whose gold data is given:

- verdicts (classification): accuracy and macro-F1 over the labels that occur in
  the gold or the predictions (as scikit-learn's default); a failed or missing
  prediction counts as wrong.
- references (free text): exact match and token F1 after SQuAD normalisation
  (lower case, no punctuation/articles), best over a query's references, with
  the ``[n]`` citation markers removed from the answer.
- qrels: citation precision (over answers that cite) and recall (over judged
  queries), the fraction of answers that cite, and context recall: the share of
  a query's relevant documents that reached the generator's prompt.

Every judged query counts: a query without an answer scores 0, never "missing".
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .datasets.formats import iter_jsonl
from .errors import ConfigError, DataFormatError
from .io import PathLike
from .types import Answer, Qrels, Result


def evaluate_rag(answers: Mapping[str, Answer] | Result, *, verdicts: Mapping[str, str] | None = None,
                 references: Mapping[str, str | Sequence[str]] | None = None,
                 qrels: Qrels | Mapping[str, Mapping[str, int]] | None = None,
                 labels: Sequence[str] | None = None, min_grade: int = 1,
                 per_query: bool = False) -> dict[str, Any]:
    """Score answers; returns ``{measure: value}`` (with ``per_query`` also ``{"per_query": ...}``)."""
    if isinstance(answers, Result):
        if answers.answers is None:
            raise ConfigError("the result has no answers: end the pipeline with a Generator")
        answers = answers.answers
    if verdicts is None and references is None and qrels is None:
        raise ConfigError("evaluate_rag needs verdicts=, references= or qrels= to compare against")
    out: dict[str, Any] = {}
    pq: dict[str, dict[str, float]] = {}
    if verdicts is not None:
        out.update(_verdicts(answers, verdicts, labels, pq))
    if references is not None:
        out.update(_references(answers, references, pq))
    if qrels is not None:
        out.update(_grounding(answers, Qrels.coerce(qrels), min_grade, pq))
    if per_query:
        out["per_query"] = pq
    return out


# ---------------------------------------------------------------------- verdicts
def _verdicts(answers: Mapping[str, Answer], gold: Mapping[str, str], labels: Sequence[str] | None,
              pq: dict[str, dict[str, float]]) -> dict[str, Any]:
    if not gold:
        raise ConfigError("verdicts are empty: nothing to evaluate against")
    allowed = set(labels) if labels is not None else None
    y_true, y_pred = [], []
    for qid, verdict in gold.items():
        a = answers.get(qid)
        pred = a.label if a is not None and not a.error else None
        for what, lab in (("gold verdict", verdict), ("predicted label", pred)):
            if allowed is not None and lab is not None and lab not in allowed:
                raise ConfigError(f"query {qid!r}: {what} {lab!r} is not one of the labels "
                                  f"{sorted(allowed)}")
        y_true.append(verdict)
        y_pred.append(pred)
        pq.setdefault(qid, {})["verdict_correct"] = float(pred == verdict)
    classes = sorted(set(y_true) | {p for p in y_pred if p is not None})
    return {"verdict_accuracy": float(np.mean([t == p for t, p in zip(y_true, y_pred)])),
            "verdict_macro_f1": macro_f1(y_true, y_pred, classes),
            "verdict_n": len(y_true), "verdict_failed": sum(p is None for p in y_pred)}


def macro_f1(y_true: Sequence[str], y_pred: Sequence[str | None], classes: Sequence[str]) -> float:
    """Unweighted mean of per-class F1 (a class never predicted nor true is not averaged)."""
    f1s = []
    for c in classes:
        tp = sum(t == c and p == c for t, p in zip(y_true, y_pred))
        fp = sum(t != c and p == c for t, p in zip(y_true, y_pred))
        fn = sum(t == c and p != c for t, p in zip(y_true, y_pred))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(f1s)) if f1s else 0.0


# -------------------------------------------------------------------- references
def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, drop punctuation and articles, squeeze spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(prediction: str, reference: str) -> float:
    p, r = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not p or not r:
        return float(p == r)
    common = sum((Counter(p) & Counter(r)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)


def _references(answers: Mapping[str, Answer], refs: Mapping[str, str | Sequence[str]],
                pq: dict[str, dict[str, float]]) -> dict[str, Any]:
    from .generators.prompts import strip_citations

    if not refs:
        raise ConfigError("references are empty: nothing to evaluate against")
    em, f1 = [], []
    for qid, ref in refs.items():
        options = [ref] if isinstance(ref, str) else list(ref)
        a = answers.get(qid)
        pred = strip_citations(a.text) if a is not None and not a.error else None
        e = max((float(normalize_answer(pred) == normalize_answer(o)) for o in options), default=0.0) \
            if pred is not None else 0.0
        f = max((token_f1(pred, o) for o in options), default=0.0) if pred is not None else 0.0
        em.append(e)
        f1.append(f)
        pq.setdefault(qid, {}).update(answer_em=e, answer_f1=f)
    return {"answer_em": float(np.mean(em)), "answer_f1": float(np.mean(f1)), "answer_n": len(em)}


# ------------------------------------------------------------- citations/context
def _grounding(answers: Mapping[str, Answer], qrels: Qrels, min_grade: int,
               pq: dict[str, dict[str, float]]) -> dict[str, Any]:
    judged = [q for q in qrels if qrels.relevant(q, min_grade)]
    if not judged:
        raise ConfigError("the qrels hold no relevant documents: nothing to evaluate against")
    ctx_recall, cite_recall, cite_prec = [], [], []
    free_text = [a for a in answers.values() if a.label is None and not a.error]
    for qid in judged:
        rel = qrels.relevant(qid, min_grade)
        a = answers.get(qid)
        context = set(a.context) if a is not None else set()
        r = len(context & rel) / len(rel)
        ctx_recall.append(r)
        pq.setdefault(qid, {})["context_recall"] = r
        if free_text:
            cited = set(a.citations) if a is not None and not a.error else set()
            cite_recall.append(len(cited & rel) / len(rel))
            pq[qid]["citation_recall"] = cite_recall[-1]
            if cited:
                cite_prec.append(len(cited & rel) / len(cited))
                pq[qid]["citation_precision"] = cite_prec[-1]
    out: dict[str, Any] = {"context_recall": float(np.mean(ctx_recall)), "context_n": len(judged)}
    if free_text:
        citing = [q for q in judged if answers.get(q) is not None and answers[q].citations]
        out.update(citation_precision=float(np.mean(cite_prec)) if cite_prec else 0.0,
                   citation_recall=float(np.mean(cite_recall)),
                   cited_fraction=len(citing) / len(judged), citation_n=len(cite_prec))
    return out


# ------------------------------------------------------------------- gold files
def load_verdicts(path: PathLike, split: str | None = None) -> dict[str, str]:
    """``qid -> verdict`` from a claims JSONL (``query-id``, ``verdict``, optional ``split``)."""
    out: dict[str, str] = {}
    for lineno, row in iter_jsonl(path, "verdicts file"):
        qid = row.get("query-id", row.get("qid", row.get("_id")))
        verdict = row.get("verdict", row.get("label"))
        if qid is None or not isinstance(verdict, str) or not verdict:
            raise DataFormatError("each line needs 'query-id' and a 'verdict' string", path, lineno)
        if split is None or row.get("split") in (None, split):
            out[str(qid)] = verdict
    return out


def load_references(path: PathLike) -> dict[str, list[str]]:
    """``qid -> [reference answers]`` from JSONL (``query-id``/``qid``, ``answers`` or ``answer``)."""
    out: dict[str, list[str]] = {}
    for lineno, row in iter_jsonl(path, "references file"):
        qid = row.get("query-id", row.get("qid", row.get("_id")))
        ans = row.get("answers", row.get("answer"))
        if isinstance(ans, str):
            ans = [ans]
        if qid is None or not isinstance(ans, list) or not all(isinstance(x, str) for x in ans):
            raise DataFormatError("each line needs 'query-id' and 'answers' (list of strings)",
                                  path, lineno)
        out[str(qid)] = ans
    return out
