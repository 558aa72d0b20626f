"""rk.evaluate_rag against hand-computed values, and the gold-file readers."""

from __future__ import annotations

import pytest

import rankkit as rk
from rankkit.errors import ConfigError, DataFormatError
from rankkit.rag_eval import load_references, load_verdicts, normalize_answer, token_f1
from rankkit.types import Answer

LABELS = ["SUPPORT", "CONTRADICT", "NOT_ENOUGH_INFO"]


def labelled(pairs: dict[str, str | None]) -> dict[str, Answer]:
    return {q: Answer(q, text=lab or "", label=lab, error=None if lab else "endpoint down")
            for q, lab in pairs.items()}


def test_verdict_accuracy_and_macro_f1_by_hand():
    gold = {"1": "SUPPORT", "2": "SUPPORT", "3": "CONTRADICT", "4": "NOT_ENOUGH_INFO", "5": "SUPPORT"}
    answers = labelled({"1": "SUPPORT", "2": "CONTRADICT", "3": "CONTRADICT", "4": None})
    # q4 failed and q5 has no answer: both count as wrong -> 2 of 5 correct
    # SUPPORT: tp 1 fp 0 fn 2 -> F1 2/4; CONTRADICT: tp 1 fp 1 fn 0 -> 2/3; NEI: tp 0 fn 1 -> 0
    out = rk.evaluate_rag(answers, verdicts=gold, labels=LABELS)
    assert out["verdict_accuracy"] == pytest.approx(2 / 5)
    assert out["verdict_macro_f1"] == pytest.approx((0.5 + 2 / 3 + 0) / 3)
    assert out["verdict_n"] == 5 and out["verdict_failed"] == 2
    sklearn = pytest.importorskip("sklearn.metrics")
    y_true = list(gold.values())
    y_pred = ["SUPPORT", "CONTRADICT", "CONTRADICT", "<none>", "<none>"]
    assert out["verdict_macro_f1"] == pytest.approx(
        sklearn.f1_score(y_true, y_pred, labels=LABELS, average="macro"))


def test_unknown_labels_are_errors():
    with pytest.raises(ConfigError, match="gold verdict 'MAYBE'"):
        rk.evaluate_rag(labelled({"1": "SUPPORT"}), verdicts={"1": "MAYBE"}, labels=LABELS)
    with pytest.raises(ConfigError, match="predicted label 'YES'"):
        rk.evaluate_rag(labelled({"1": "YES"}), verdicts={"1": "SUPPORT"}, labels=LABELS)
    with pytest.raises(ConfigError, match="needs verdicts"):
        rk.evaluate_rag(labelled({"1": "YES"}))


def test_answer_exact_match_and_token_f1():
    assert normalize_answer("The  Cat, sat!") == "cat sat"
    assert token_f1("a cat sat on the mat", "the cat sat") == pytest.approx(2 * (2 / 4) * 1 / (2 / 4 + 1))
    answers = {"1": Answer("1", "The cat sat [1]."), "2": Answer("2", "Paris is big [2]"),
               "3": Answer("3", "", error="timeout")}
    refs = {"1": ["cat sat", "dog"], "2": "Paris", "3": "x", "4": "missing"}
    out = rk.evaluate_rag(answers, references=refs, per_query=True)
    # q1 exact after normalisation; q2: 1 common of 3 predicted / 1 reference -> F1 0.5
    assert out["answer_em"] == pytest.approx(1 / 4)
    assert out["answer_f1"] == pytest.approx((1 + 0.5 + 0 + 0) / 4)
    assert out["per_query"]["2"] == {"answer_em": 0.0, "answer_f1": pytest.approx(0.5)}


def test_citation_precision_recall_and_context_recall():
    qrels = {"1": {"a": 1, "b": 1, "z": 0}, "2": {"c": 2}, "3": {"d": 1}, "4": {"q": 0}}
    answers = {
        "1": Answer("1", "x [1][2]", citations=["a", "x"], context=["a", "x", "b"]),
        "2": Answer("2", "no cite", citations=[], context=["y", "c"]),
        # q3 has no answer at all; q4 has no relevant document and is not judged
    }
    out = rk.evaluate_rag(answers, qrels=qrels)
    # context recall: q1 2/2, q2 1/1, q3 0 -> 2/3
    assert out["context_recall"] == pytest.approx(2 / 3) and out["context_n"] == 3
    # precision over citing answers (q1: 1 of 2); recall over judged queries (1/2, 0, 0)
    assert out["citation_precision"] == pytest.approx(0.5) and out["citation_n"] == 1
    assert out["citation_recall"] == pytest.approx((0.5 + 0 + 0) / 3)
    assert out["cited_fraction"] == pytest.approx(1 / 3)


def test_classification_answers_get_no_citation_measures():
    answers = {"1": Answer("1", "SUPPORT", label="SUPPORT", context=["a"])}
    out = rk.evaluate_rag(answers, qrels={"1": {"a": 1}}, verdicts={"1": "SUPPORT"})
    assert out["context_recall"] == 1.0 and out["verdict_accuracy"] == 1.0
    assert "citation_precision" not in out


def test_result_without_answers_is_an_error():
    with pytest.raises(ConfigError, match="no answers"):
        rk.evaluate_rag(rk.Result(rk.Run()), qrels={"1": {"a": 1}})


def test_load_verdicts_and_references(tmp_path):
    claims = tmp_path / "claims.jsonl"
    claims.write_text('{"query-id": "1", "split": "train", "verdict": "SUPPORT", "evidence": {}}\n'
                      '{"query-id": 2, "split": "test", "verdict": "CONTRADICT"}\n\n')
    assert load_verdicts(claims) == {"1": "SUPPORT", "2": "CONTRADICT"}
    assert load_verdicts(claims, split="test") == {"2": "CONTRADICT"}
    claims.write_text('{"query-id": "1", "verdict": "SUPPORT"}\n{"query-id": "2"}\n')
    with pytest.raises(DataFormatError, match="claims.jsonl, line 2"):
        load_verdicts(claims)
    refs = tmp_path / "refs.jsonl"
    refs.write_text('{"qid": "1", "answers": ["a", "b"]}\n{"query-id": "2", "answer": "c"}\n')
    assert load_references(refs) == {"1": ["a", "b"], "2": ["c"]}
    refs.write_text('{"qid": "1", "answers": [1]}\n')
    with pytest.raises(DataFormatError, match="line 1"):
        load_references(refs)
