"""``rankkit simulate-clicks``: writes a click log, prints a summary, errors without tracebacks."""

from __future__ import annotations

import json

from conftest import rankkit


def _files(tmp_path):
    run = tmp_path / "log.run"
    run.write_text("".join(f"q{q} Q0 d{d} {d + 1} {10 - d} logger\n" for q in range(3) for d in range(6)))
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("".join(f"q{q} 0 d{d} {(q + d) % 3}\n" for q in range(3) for d in range(6)))
    return run, qrels


def test_simulate_clicks_writes_a_readable_log(tmp_path):
    from rankkit.ultr.clicklog import read_click_log

    run, qrels = _files(tmp_path)
    out = rankkit("simulate-clicks", run, "--qrels", qrels, "--out", tmp_path / "clicks.jsonl",
                  "--sessions", 2000, "--k", 5, "--eta", 2, "--seed", 3, "--json")
    summary = json.loads(out.stdout)
    assert summary["sessions"] == 2000 and summary["queries"] == 3
    assert summary["model"]["max_grade"] == 2 and summary["model"]["eta"] == 2.0
    log = read_click_log(tmp_path / "clicks.jsonl")
    assert len(log) == 2000 and log.width == 5
    assert summary["ctr_by_rank"] == [round(float(x), 4) for x in log.ctr_by_position()]
    # ranks are shown in the run's order, so rank 1 is examined most
    assert summary["ctr_by_rank"][0] > summary["ctr_by_rank"][4]

    quiet = rankkit("simulate-clicks", run, "--qrels", qrels, "--out", tmp_path / "c.parquet",
                    "--sessions", 100, "--model", "cascade", "-q")
    assert quiet.stdout.startswith("wrote 100 sessions") and "CTR" not in quiet.stdout    # the result only
    assert len(read_click_log(tmp_path / "c.parquet")) == 100
    plain = rankkit("simulate-clicks", run, "--qrels", qrels, "--out", tmp_path / "c.jsonl",
                    "--sessions", 100, "--curve", "ultra")
    assert "wrote 100 sessions" in plain.stdout and "CTR" in plain.stdout and "0.68" in plain.stdout


def test_simulate_clicks_bad_options_are_one_line_errors(tmp_path):
    run, qrels = _files(tmp_path)
    for extra, message in ((["--model", "ubm"], "unknown click model"),
                           (["--curve", "a,b"], "--curve must be"),
                           (["--model", "cascade", "--curve", "ultra"], "pbm model only"),
                           (["--eps-minus", "0.9", "--eps-plus", "0.5"], "eps_minus")):
        proc = rankkit("simulate-clicks", run, "--qrels", qrels, "--out", tmp_path / "x.jsonl", *extra, ok=False)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    proc = rankkit("simulate-clicks", run, "--qrels", qrels, "--out", tmp_path / "x.csv", ok=False)
    assert proc.returncode == 2 and "unknown format" in proc.stderr
