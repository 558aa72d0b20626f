"""Click logs: JSONL / Parquet / Baidu-ULTR round trips, and bad input named by file and line."""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pytest

from rankkit.errors import ConfigError, DataFormatError
from rankkit.ultr.clicklog import ClickLog, read_baidu_ultr, read_click_log, write_click_log

SESSIONS = [
    {"qid": "q1", "query": "solar wind", "docids": ["d1", "d2", "d3"], "clicks": [0, 1, 0],
     "dwell": [None, 12.5, None], "display": {"height": [120.0, 80.0, 95.0]}},
    {"qid": "q2", "docids": ["d9"], "clicked_positions": [], "display": {"height": [60.0]}},
    {"qid": "q1", "query": "solar wind", "docids": ["d3", "d1"], "clicked_positions": [1, 2]},
]


def _write(path, lines):
    path.write_text("".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines))
    return path


def _same(a: ClickLog, b: ClickLog) -> None:
    assert a.qids.tolist() == b.qids.tolist()
    assert np.array_equal(a.docids, b.docids) and np.array_equal(a.clicks, b.clicks)
    assert np.array_equal(a.lengths, b.lengths) and a.queries == b.queries
    assert (a.dwell is None) == (b.dwell is None)
    if a.dwell is not None:
        assert np.array_equal(np.isnan(a.dwell), np.isnan(b.dwell))
        assert np.allclose(np.nan_to_num(a.dwell), np.nan_to_num(b.dwell))
    assert set(a.display) == set(b.display)
    for k in a.display:
        assert np.allclose(np.nan_to_num(a.display[k], nan=-1), np.nan_to_num(b.display[k], nan=-1))


def test_jsonl_and_parquet_round_trip(tmp_path):
    log = read_click_log(_write(tmp_path / "in.jsonl", SESSIONS))
    assert log.clicks.tolist() == [[0, 1, 0], [0, 0, 0], [1, 1, 0]]
    assert log.lengths.tolist() == [3, 1, 2] and log.queries == {"q1": "solar wind"}
    assert math.isnan(log.dwell[0, 0]) and log.dwell[0, 1] == 12.5
    for name in ("out.jsonl", "out.parquet"):
        path = write_click_log(log, tmp_path / name)
        _same(log, read_click_log(path))
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary file


def test_sessions_without_clicks_are_kept_or_counted(tmp_path):
    path = _write(tmp_path / "log.jsonl", SESSIONS)
    assert len(read_click_log(path)) == 3
    dropped = read_click_log(path, drop_unclicked=True)
    assert len(dropped) == 2 and dropped.skipped == {"no_clicks": 1}
    assert read_click_log(path).drop_unclicked().skipped == {"no_clicks": 1}


def test_aggregate_groups_identical_lists(tmp_path):
    log = ClickLog(["a", "a", "a", "b"], [["x", "y"], ["x", "y"], ["y", "x"], ["z", ""]],
                   [[1, 0], [0, 0], [1, 1], [1, 0]], [2, 2, 2, 1])
    agg = log.aggregate()
    got = {(q, tuple(d[:n])): (c.tolist(), k) for q, d, n, c, k in
           zip(agg.qids, agg.docids.tolist(), agg.lengths, agg.ctr, agg.counts)}
    assert got[("a", ("x", "y"))] == ([0.5, 0.0], 2)
    assert got[("a", ("y", "x"))] == ([1.0, 1.0], 1)
    assert got[("b", ("z",))] == ([1.0, 0.0], 1)


@pytest.mark.parametrize("line, message", [
    ('{"qid": "q", "docids": ["a", "b"], "clicks": [1]}', "'clicks' has 1 entries but 'docids' has 2"),
    ('{"qid": "q", "docids": ["a", "b"], "clicked_positions": [3]}', "clicked position 3 is past the displayed"),
    ('{"qid": "q", "docids": ["a"], "clicks": [2]}', "must be 0 or 1"),
    ('{"qid": "q", "docids": ["a"], "clicks": [1], "dwell": [1, 2]}', "'dwell'"),
    ('{"qid": "q", "docids": ["a"], "clicks": [1], "display": {"h": []}}', "display feature 'h'"),
    ('{"qid": "q", "docids": ["a"]}', "neither 'clicks' nor 'clicked_positions'"),
    ('{"qid": "q", "docids": ["a"], "clicks": [1]', "malformed JSON"),
    ('[1, 2]', "must be a JSON object"),
])
def test_bad_jsonl_names_file_and_line(tmp_path, line, message):
    path = _write(tmp_path / "bad.jsonl", [SESSIONS[0], "", line])
    with pytest.raises(DataFormatError, match=message) as err:
        read_click_log(path)
    assert err.value.line == 3 and str(path) in str(err.value) and "line 3" in str(err.value)


def test_bad_parquet_names_file_and_row(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"qid": ["q", "r"], "docids": [["a", "b"], ["c"]], "clicks": [[0, 1], [1, 0]]}), path)
    with pytest.raises(DataFormatError, match="row 2: 'clicks' has 2 entries") as err:
        read_click_log(path)
    assert str(path) in str(err.value)
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(DataFormatError, match="Parquet"):
        read_click_log(tmp_path / "junk.parquet")
    with pytest.raises(ConfigError, match="unknown format"):
        write_click_log(ClickLog([], np.empty((0, 0)), np.empty((0, 0)), []), tmp_path / "log.csv")


def _baidu_doc(pos, url, click, dwell="-", height="120"):
    cols = ["-"] * 32
    cols[:6] = [str(pos), url, "11\x0122", "33\x0144\x0155", "0", str(click)]
    cols[9], cols[10], cols[16] = height, "3.5", dwell
    return "\t".join(cols)


def test_baidu_ultr_reader_round_trips(tmp_path):
    lines = ["1001\t7\x018\x019\t", _baidu_doc(2, "u2", 1, "30.0", "200"), _baidu_doc(1, "u1", 0),
             _baidu_doc(3, "u3", 0), "1002\t5\t", _baidu_doc(1, "u9", 0), "1003\t6\t"]
    path = tmp_path / "part-00001.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    log = read_baidu_ultr(path)
    assert log.qids.tolist() == ["1001", "1002"] and log.skipped == {"empty": 1}
    assert log.docids[0].tolist() == ["u1", "u2", "u3"]  # ordered by position
    assert log.clicks.tolist() == [[0, 1, 0], [0, 0, 0]]
    assert log.queries == {"1001": "7 8 9", "1002": "5"}
    assert log.dwell[0, 1] == 30.0 and math.isnan(log.dwell[0, 0])
    assert log.display["serp_height"][0].tolist() == [120.0, 200.0, 120.0]
    assert log.display["displayed_time"][0, 0] == 3.5
    for name in ("baidu.jsonl", "baidu.parquet"):
        _same(log, read_click_log(write_click_log(log, tmp_path / name)))
    clicked = read_baidu_ultr(path, drop_unclicked=True)
    assert len(clicked) == 1 and clicked.skipped == {"empty": 1, "no_clicks": 1}


@pytest.mark.parametrize("bad, message", [
    (_baidu_doc(1, "u5", 0), "position 1 appears twice"),
    (_baidu_doc(0, "u5", 0), "position 0 is below 1"),
    (_baidu_doc(2, "u5", 7), "click must be 0 or 1"),
    ("1\t2\t3\t4", "found 4 fields"),
])
def test_baidu_bad_lines_name_file_and_line(tmp_path, bad, message):
    path = tmp_path / "s.txt"
    path.write_text("\n".join(["9\t1\t", _baidu_doc(1, "u1", 1), bad]) + "\n")
    with pytest.raises(DataFormatError, match=message) as err:
        read_baidu_ultr(path)
    assert err.value.line == 3 and str(path) in str(err.value)
    path.write_text(_baidu_doc(1, "u1", 1) + "\n")
    with pytest.raises(DataFormatError, match="before any query line"):
        read_baidu_ultr(path)


def test_baidu_annotations(tmp_path):
    from rankkit.ultr.clicklog import read_baidu_annotations

    path = tmp_path / "annotations.txt"
    path.write_text("5\t1\x012\t3\x014\t5\t4\t0\n5\t1\x012\t6\t7\t0\t0\n6\t9\t8\t8\t2\t9\n")
    ann = read_baidu_annotations(path)
    assert ann.queries == {"5": "1 2", "6": "9"} and ann.buckets == {"5": 0, "6": 9}
    assert sorted(ann.qrels["5"].values()) == [0, 4] and len(ann.documents) == 3
    doc = next(d for d, g in ann.qrels["5"].items() if g == 4)
    assert ann.documents[doc] == ("3 4", "5")
    path.write_text("5\t1\t3\t4\t7\t0\n")
    with pytest.raises(DataFormatError, match="label 7 is outside 0-4") as err:
        read_baidu_annotations(path)
    assert err.value.line == 1
