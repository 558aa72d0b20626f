"""`rankkit run pipelines/NAME.py` end to end on a slice of SciFact, the pipeline-file
convention, the ready pipelines, and `rankkit demo` showing retrieve -> rerank -> generate."""

from __future__ import annotations

import importlib.util
import json

import pytest
from tiny_llm import tiny_llm_dir

import rankkit as rk
from rankkit.cli.common import parse_options
from rankkit.errors import ConfigError
from rankkit.recipes import NoRerank
from rankkit.runner import (
    build_stage,
    execute,
    load_pipeline_module,
    run_pipeline_file,
)

from conftest import DEMO, ROOT, rankkit, shared

HAS_CE = importlib.util.find_spec("rankkit.rerankers.cross_encoder") is not None



@pytest.fixture(scope="module")
def tiny():
    return str(tiny_llm_dir())


def test_run_writes_run_answers_and_metrics(tmp_path, tiny, scifact, scifact_bm25):
    data = shared("beir", "scifact")
    out = tmp_path / "out"
    proc = rankkit("run", ROOT / "pipelines" / "bm25_generate.py", "--dataset", data, "--limit", 3,
                   "--out", out, "-o", f"model={tiny}", "-o", "max_new_tokens=4", "-o", "k=2")
    assert "nDCG@10" in proc.stdout and "1:generator" in proc.stdout
    assert "[2/2] generator" in proc.stderr                            # a progress bar per stage
    qids = scifact.queries.ids[:3]
    run = rk.Run.read_trec(out / "run.trec")
    assert run.qids == qids and all(len(run.docids(q)) == 100 for q in qids)
    answers = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    assert [a["qid"] for a in answers] == qids
    for a in answers:
        assert a["context"] == run.docids(a["qid"])[:2].tolist()
        assert a["query"] == scifact.queries[a["qid"]] and "[2] " in a["prompt"]
    report = json.loads((out / "metrics.json").read_text())
    expected = rk.evaluate((scifact_bm25 % 100)(scifact.queries.head(3)), scifact.qrels.subset(qids),
                           ["nDCG@10", "R@100"])
    assert report["retrieval"]["nDCG@10"] == pytest.approx(expected["nDCG@10"])
    assert report["retrieval"]["R@100"] == pytest.approx(expected["R@100"])
    recall = [len(set(a["context"]) & scifact.qrels.relevant(a["qid"])) / len(scifact.qrels.relevant(a["qid"]))
              for a in answers]
    assert report["rag"]["context_recall"] == pytest.approx(sum(recall) / 3)
    assert set(report["timings"]) >= {"build", "0:bm25", "1:generator", "total"}
    assert report["generator"]["queries"] == 3 and report["queries"] == 3


def test_run_verify_scores_verdicts_from_claims(tmp_path, tiny):
    data = shared("beir", "scifact")
    proc = rankkit("run", "bm25_verify", "--dataset", data, "--limit", 4, "--out", tmp_path,
                   "-o", f"model={tiny}", "--json", "--quiet")
    report = json.loads(proc.stdout)
    assert report["rag"]["verdict_n"] == 4 and 0.0 <= report["rag"]["verdict_accuracy"] <= 1.0
    labels = {json.loads(x)["label"] for x in (tmp_path / "answers.jsonl").read_text().splitlines()}
    assert labels <= {"SUPPORT", "CONTRADICT", "NOT_ENOUGH_INFO"}
    assert "[1/2] bm25" not in proc.stderr and "Loading weights" not in proc.stderr  # --quiet


def test_run_bad_input_is_one_line_errors(tmp_path, tiny):
    data = shared("beir", "scifact")
    proc = rankkit("run", "pipelines/nope.py", "--dataset", data, ok=False)
    assert proc.returncode == 2 and proc.stderr.startswith("error: pipeline file not found")
    assert "bm25_generate" in proc.stderr and "Traceback" not in proc.stderr
    bad = tmp_path / "bad.py"
    bad.write_text("x = 1\n")
    with pytest.raises(ConfigError, match="defines no build"):
        run_pipeline_file(bad, data)
    with pytest.raises(ConfigError, match="temperature_typo"):
        run_pipeline_file("bm25_generate", data, limit=1, opts={"temperature_typo": 1, "model": tiny})
    with pytest.raises(ConfigError, match="gold verdict .* is not one of the labels"):
        run_pipeline_file("bm25_verify", data, limit=1, out=tmp_path / "o", progress=False,
                          opts={"model": tiny, "labels": ["SUPPORT", "MAYBE"]})


def test_execute_matches_calling_the_pipeline(demo):
    bm25 = rk.BM25.build(demo.corpus)
    pipe = bm25 % 20 >> NoRerank() % 5
    chunked = execute(pipe, demo.queries, progress=False, chunk_size=3)
    assert chunked.run == pipe(demo.queries).run and chunked.run.num_hits() > 10
    assert list(chunked.timings) == ["0:bm25", "1:no-rerank", "2:cutoff"]


def test_options_parse_as_yaml_and_unknown_options_fail(demo, tmp_path):
    assert parse_options(["k=3", "labels=[A, B]", "prompt=answer", "x="]) == \
        {"k": 3, "labels": ["A", "B"], "prompt": "answer", "x": ""}
    with pytest.raises(ConfigError, match="not key=value"):
        parse_options(["k"])
    module = load_pipeline_module(ROOT / "pipelines" / "bm25_generate.py")
    with pytest.raises(ConfigError, match="nonsense"):          # passed on to rk.Generator
        build_stage(module, demo, {"nonsense": 1})
    strict = tmp_path / "strict.py"
    strict.write_text("import rankkit as rk\ndef build(dataset, depth=10):\n"
                      "    return rk.BM25.build(dataset.corpus) % depth\n")
    with pytest.raises(ConfigError, match=r"takes no option\(s\) \['k'\] \(options: depth\)"):
        build_stage(load_pipeline_module(strict), demo, {"k": 3})
    assert build_stage(load_pipeline_module(strict), demo, {"depth": 4}).k == 4


def test_cross_encoder_pipeline_says_what_is_missing(demo, monkeypatch):
    from rankkit.rerankers.registry import RERANKERS

    monkeypatch.setitem(RERANKERS, "cross-encoder", "rankkit.rerankers.not_installed:CrossEncoder")
    module = load_pipeline_module(ROOT / "pipelines" / "bm25_ce_generate.py")
    with pytest.raises(rk.MissingResourceError, match="reranker 'cross-encoder' is not available: "
                                                      "module rankkit.rerankers.not_installed"):
        build_stage(module, demo, {})
    with pytest.raises(ConfigError, match="unknown reranker 'listwise-typo'"):
        build_stage(module, demo, {"reranker_name": "listwise-typo"})


@pytest.mark.skipif(not HAS_CE, reason="rk.CrossEncoder (issue 5) is not in this checkout")
def test_bm25_ce_generate_runs_with_the_shipped_reranker(tmp_path, tiny):
    data = shared("beir", "scifact")
    proc = rankkit("run", "bm25_ce_generate", "--dataset", data, "--limit", 2, "--out", tmp_path / "o",
                   "-o", f"model={tiny}", "-o", "max_new_tokens=2", "-o", "depth=20", "--json", "--quiet")
    report = json.loads(proc.stdout)
    stages = [k for k in report["timings"] if k[0].isdigit()]   # bm25, cross-encoder, %20, generator
    assert stages == ["0:bm25", "1:cross-encoder", "2:cutoff", "3:generator"]
    assert report["stages"]["stages"][1]["model"] == "minilm-scifact"
    assert report["generator"]["queries"] == 2 and "nDCG@10" in report["retrieval"]
    run = rk.Run.read_trec(tmp_path / "o" / "run.trec")
    answers = [json.loads(x) for x in (tmp_path / "o" / "answers.jsonl").read_text().splitlines()]
    for a in answers:                                        # the generator read the reranked top 3
        assert a["context"] == run.docids(a["qid"])[:3].tolist()


def test_demo_shows_retrieve_rerank_generate(tiny):
    proc = rankkit("demo", "--model", tiny, "--max-new-tokens", "8")
    out = proc.stdout
    assert "query: how do plants turn sunlight into energy" in out
    assert "answer (" in out and "[1]" in out and "d01" in out
    assert "0:bm25" in out and "generator" in out
    if not HAS_CE:
        assert "note: no cross-encoder reranking" in out and "no-rerank" in out
    assert "bm25 >> rerank" in out


def test_demo_without_the_llm_says_so():
    proc = rankkit("demo", "--model", str(DEMO / "no-such-model"))
    assert "note: no answer will be generated" in proc.stdout and "nDCG@10" in proc.stdout


class StandInCrossEncoder(rk.Reranker):
    """Plays rk.CrossEncoder's part (issue 5) to test the wiring: prefers higher docids."""

    name = "cross-encoder"

    def __init__(self, model="stand-in-default", corpus=None, show_progress=True):
        self.model, self.corpus = model, corpus

    def tuned_interpolation(self):
        return 1.0  # what interpolate="auto" gives: the reranker's own order

    def score_pairs(self, query_texts, qidx, docids):
        return [float(d[1:]) for d in docids]


@pytest.fixture()
def stand_in_ce(monkeypatch):
    from rankkit.rerankers.registry import RERANKERS

    monkeypatch.setitem(RERANKERS, "cross-encoder", StandInCrossEncoder)
    return StandInCrossEncoder


def test_reranked_order_reaches_the_generator(stand_in_ce, demo, tiny):
    module = load_pipeline_module(ROOT / "pipelines" / "bm25_ce_generate.py")
    default = build_stage(module, demo, {}).stages[1]
    assert default.model == "stand-in-default" and default.interpolate == 1.0  # the pipelines ask for "auto"
    stage = build_stage(module, demo, {"reranker": "any-ce", "model": tiny, "max_new_tokens": 2})
    assert [s.name for s in stage.stages] == ["bm25", "cross-encoder", "cutoff", "generator"]
    result = execute(stage, demo.queries, progress=False)
    bm25_run = (rk.BM25.build(demo.corpus) % 100)(demo.queries)
    for qid, a in result.answers.items():
        by_ce = sorted(bm25_run.docids(qid).tolist(), key=lambda d: -int(d[1:]))
        assert a.context == by_ce[:3]


@pytest.mark.skipif(importlib.util.find_spec("rankkit.retrievers.dense") is None,
                    reason="rk.DenseRetriever is not in this checkout")
def test_hybrid_pipeline_fuses_bm25_and_dense_before_reranking(stand_in_ce, demo, tiny):
    module = load_pipeline_module(ROOT / "pipelines" / "hybrid_ce_generate.py")
    stage = build_stage(module, demo, {"model": tiny, "max_new_tokens": 2, "depth": 10})
    assert [s.name for s in stage.stages] == ["fuse", "cross-encoder", "cutoff", "generator"]
    result = execute(stage, demo.queries, progress=False)
    assert set(result.answers) == set(demo.queries)
    fused = rk.as_run(stage.stages[0](demo.queries))        # the fused top 10
    for qid, a in result.answers.items():                  # rerank over the fused candidates
        assert a.context == sorted(fused.docids(qid).tolist(), key=lambda d: -int(d[1:]))[:3]


def test_demo_uses_the_cross_encoder_when_there_is_one(stand_in_ce, tiny):
    from typer.testing import CliRunner

    from rankkit.cli import _register, app

    _register()
    res = CliRunner().invoke(app, ["demo", "--model", tiny, "--max-new-tokens", "4",
                                   "--reranker", "any-ce"])
    assert res.exit_code == 0, res.output
    assert "note: no cross-encoder" not in res.output and "1:cross-encoder" in res.output
    assert "answer (" in res.output
