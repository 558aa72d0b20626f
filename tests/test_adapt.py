"""DUQGen-style adaptation end to end on a tiny corpus, a tiny LLM and a tiny reranker."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("faiss")

from tiny_llm import tiny_llm_dir  # noqa: E402
from tiny_models import build_tiny_bert  # noqa: E402

import rankkit as rk  # noqa: E402
from rankkit.llm.backends import Generation  # noqa: E402
from rankkit.training.adapt import AdaptOptions, adapt, clean_query, select_documents, write_queries  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
TOPICS = ["wing lift and drag at high speed", "vitamin intake in elderly patients", "neutron scattering in metals",
          "heat transfer in boundary layers", "protein folding in yeast cells"]


def _corpus(n: int) -> dict[str, str]:
    return {f"d{i}": f"Study {i} on {TOPICS[i % len(TOPICS)]}: results number {i} and notes." for i in range(n)}


def test_clean_query_drops_empty_and_copies():
    doc = "Aspirin taken daily lowered the rate of first heart attacks in adults."
    assert clean_query('Query: "aspirin heart attacks"\nmore', doc) == ("aspirin heart attacks", None)
    assert clean_query("  \n ... ", doc)[1] == "empty"
    assert clean_query(doc, doc)[1] == "copies the document"
    assert clean_query("the rate of first heart attacks in adults", doc)[1] == "copies the document"
    # an echo of the document's opening, cut off mid-word by the token limit, is still a copy
    assert clean_query("aspirin taken daily lowered the rate of first heart att", doc)[1] == "copies the document"
    assert clean_query("does daily aspirin prevent first heart attacks in adults", doc)[1] is None
    example = "The revolutions of 1848 spread from Paris to most of central Europe within a few weeks."
    echo = "does aspirin spread from Paris to most of central europe within a few weeks"
    assert clean_query(echo, doc, [example])[1] == "copies a few-shot example"
    assert clean_query("does daily aspirin prevent first heart attacks in adults", doc, [example])[1] is None


def test_selection_clusters_in_proportion_or_uses_a_small_corpus_whole():
    c = _corpus(40)
    ids = list(c)
    small, info = select_documents(ids[:5], [c[d] for d in ids[:5]], AdaptOptions(n_docs=10, clusters=3))
    assert small == ids[:5] and info["clustered"] is False
    opts = AdaptOptions(n_docs=10, clusters=5, show_progress=False)
    a, info = select_documents(ids, [c[d] for d in ids], opts)
    b, _ = select_documents(ids, [c[d] for d in ids], opts)
    assert a == b and len(a) == 10 == len(set(a)) and info["clustered"] and sum(info["cluster_sizes"]) == 40


def test_adapt_end_to_end(tmp_path):
    reranker = build_tiny_bert(tmp_path / "reranker", head=True)
    opts = AdaptOptions(n_docs=8, clusters=3, llm=str(tiny_llm_dir()), max_new_tokens=8, depth=5,
                        num_negatives=3, agree_rank=4, steps=2, batch_size=2, max_length=48,
                        adapter_options={"r": 2, "lora_dropout": 0.0}, show_progress=False)
    report = adapt(_corpus(30), str(reranker), tmp_path / "adapter", opts)
    rows = [json.loads(x) for x in (tmp_path / "adapter.queries.jsonl").read_text().splitlines()]
    assert len(rows) == report["generated"] == 8
    retried = sum(r["attempts"] - 1 for r in rows)
    assert report["llm_calls"] == 8 + retried and all(1 <= r["attempts"] <= 1 + opts.retries for r in rows)
    assert sum(report["counts"].values()) == 8 and report["counts"].get("kept", 0) == report["pairs"] > 0
    manifest = json.loads((tmp_path / "adapter" / "rankkit.json").read_text())
    assert manifest["training"]["adapt"]["counts"] == report["counts"]
    scores = rk.CrossEncoder(tmp_path / "adapter", show_progress=False).predict(["wing lift"], ["wing drag"])
    assert np.isfinite(scores).all()


class EchoThenAsk:
    """An LLM stand-in that echoes the document when decoding greedily and asks a question when sampling:
    the failure of small LLMs that the retries exist for."""

    def __init__(self):
        self.calls: list[dict] = []

    def render(self, messages):
        return messages[-1]["content"].removeprefix("Document: ")

    def generate(self, prompts, messages, max_new_tokens, batch_size, progress=False, **kwargs):
        self.calls.append({"n": len(prompts), **kwargs})
        if kwargs.get("do_sample"):
            return [Generation(text=f"what about {p.split()[1]}", n_tokens=3) for p in prompts]
        return [Generation(text=p, n_tokens=3) for p in prompts]


def test_copied_queries_are_regenerated_by_sampling():
    corpus = {"a": "Study one on wing lift and drag at high speed.", "b": "Notes two on vitamin intake."}
    llm = EchoThenAsk()
    rows, calls = write_queries(llm, corpus, ["a", "b"], AdaptOptions(retries=2, show_progress=False))
    assert [r["dropped"] for r in rows] == [None, None] and [r["attempts"] for r in rows] == [2, 2]
    assert [r["query"] for r in rows] == ["what about one", "what about two"] and calls == 4
    assert llm.calls[0].get("do_sample") is None and llm.calls[1]["do_sample"] is True
    assert len(llm.calls) == 2                          # nothing left to retry after the first sampled pass
    rows, calls = write_queries(EchoThenAsk(), corpus, ["a"], AdaptOptions(retries=0, show_progress=False))
    assert rows[0]["dropped"] == "copies the document" and calls == 1


@pytest.mark.slow
def test_cli_adapt(tmp_path):
    from conftest import rankkit

    reranker = build_tiny_bert(tmp_path / "reranker", head=True)
    (tmp_path / "docs.tsv").write_text("".join(f"{d}\t{t}\n" for d, t in _corpus(12).items()))
    proc = rankkit("adapt", "--corpus", tmp_path / "docs.tsv", "--out", tmp_path / "ad", "--reranker", reranker,
                   "--llm", tiny_llm_dir(), "--docs", 20, "--clusters", 2, "--steps", 1, "--agree-rank", 0,
                   "--json")
    report = json.loads(proc.stdout)
    assert report["generated"] == 12 and report["selection"]["clustered"] is False   # fewer than --docs: all
    assert (tmp_path / "ad" / "rankkit.json").exists() and (tmp_path / "ad.queries.jsonl").exists()
