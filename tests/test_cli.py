"""The rankkit command end to end: index -> search -> eval, errors without tracebacks."""

from __future__ import annotations

import json

import pytest

from conftest import DEMO, rankkit, shared


def test_help_lists_commands():
    out = rankkit("--help").stdout
    for cmd in ("index", "search", "eval", "demo"):
        assert cmd in out


def test_index_search_eval_scifact(tmp_path):
    data = shared("beir", "scifact")
    rankkit("index", "bm25", "--corpus", data, "--out", tmp_path / "idx", "-q")
    assert (tmp_path / "idx" / "rankkit.json").exists()
    rankkit("search", tmp_path / "idx", "--queries", data, "--split", "test", "--k", 100,
            "--out", tmp_path / "bm25.run")
    lines = (tmp_path / "bm25.run").read_text().splitlines()
    assert len({ln.split()[0] for ln in lines}) == 300 and lines[0].endswith(" bm25")
    out = rankkit("eval", tmp_path / "bm25.run", "--qrels", data, "-m", "nDCG@10", "-m", "R@100", "--json")
    scores = json.loads(out.stdout)["bm25.run"]
    assert scores["nDCG@10"] >= 0.67
    table = rankkit("eval", tmp_path / "bm25.run", "--qrels", data / "qrels" / "test.tsv").stdout
    assert "nDCG@10" in table and f"{scores['nDCG@10']:.4f}" in table


def test_eval_several_runs_with_significance(tmp_path):
    rankkit("index", "bm25", "--corpus", DEMO, "--out", tmp_path / "a", "--quiet")
    rankkit("index", "bm25", "--corpus", DEMO, "--out", tmp_path / "b", "--stemmer", "none",
            "--stopwords", "none", "--no-progress")
    for name in ("a", "b"):
        rankkit("search", tmp_path / name, "--queries", DEMO / "queries.jsonl", "--out", tmp_path / f"{name}.run")
    out = rankkit("eval", tmp_path / "a.run", tmp_path / "b.run", "--qrels", DEMO, "-m", "nDCG@10",
                  "-m", "RR", "--json")
    d = json.loads(out.stdout)
    assert d["baseline"] == "a.run" and "p" in d["systems"]["b.run"]["nDCG@10"]
    table = rankkit("eval", tmp_path / "a.run", tmp_path / "b.run", "--qrels", DEMO).stdout
    assert "a.run (baseline)" in table and "t-test" in table
    pq = json.loads(rankkit("eval", tmp_path / "a.run", "--qrels", DEMO, "--per-query", "--json").stdout)
    assert set(pq["a.run"]) == {str(i) for i in range(1, 11)}


@pytest.mark.parametrize("args, message", [
    (["eval", "missing.run", "--qrels", str(DEMO)], "run file not found: missing.run"),
    (["eval", "RUN", "--qrels", str(DEMO), "-m", "nDGC@10"], "unknown measure 'nDGC@10'"),
    (["search", "nowhere", "--queries", str(DEMO), "--out", "x.run"], "index folder not found: nowhere"),
    (["index", "bm25", "--corpus", "BADJSONL", "--out", "OUT"], "bad.jsonl, line 2: malformed JSON"),
])
def test_errors_are_one_line_without_traceback(tmp_path, args, message):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"_id": "1", "text": "ok"}\n{oops\n')
    run = tmp_path / "r.run"
    run.write_text("1 Q0 d01 1 1.0 x\n")
    args = [str(run) if a == "RUN" else str(bad) if a == "BADJSONL" else str(tmp_path / "out") if a == "OUT" else a
            for a in args]
    proc = rankkit(*args, ok=False)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_demo_runs_without_third_party_noise():
    from rankkit.cli.demo import _text
    from rankkit.demo import load_demo

    proc = rankkit("demo", "--json")
    data = json.loads(proc.stdout)
    assert data["hits"][0]["rank"] == 1 and data["ranking"]["bm25"]["nDCG@10"] > 0.5
    # no transformers FutureWarnings, no GGUF conversion bar, no tracebacks; notes only
    for noise in ("Warning", "Converting", "%|", "Traceback"):
        assert noise not in proc.stderr, proc.stderr
    out = _text(data, load_demo(), 10, ["nDCG@10", "RR@10", "R@10"])
    assert "query:" in out and "nDCG@10" in out and "d01" in out
