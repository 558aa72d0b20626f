"""ScoreCache: rows reused, interrupted rows cut, one folder per model, malformed index refused."""

from __future__ import annotations

import numpy as np
import pytest

from rankkit.errors import DataFormatError, RankkitError
from rankkit.rerankers.score_cache import ScoreCache

IDS = ["a", "b", "c"]
TEXTS = ["apple pie", "banana bread", "cherry jam"]


class Counting:
    """Scores = length of query + index of doc text; counts pairs scored."""

    def __init__(self):
        self.pairs = 0

    def __call__(self, queries, docs):
        self.pairs += len(queries)
        return np.array([len(q) + TEXTS.index(d) for q, d in zip(queries, docs)], dtype=np.float32)


def test_rows_are_computed_once_and_reused_across_instances(tmp_path):
    fn = Counting()
    sc = ScoreCache(tmp_path, "m1", IDS, TEXTS, fn)
    m = sc.matrix(["q", "query two", "q"], chunk=2)
    assert m.tolist() == [[1, 2, 3], [9, 10, 11], [1, 2, 3]] and fn.pairs == 6
    again = ScoreCache(tmp_path, "m1", IDS, TEXTS, fn)
    assert again.has("query two") and len(again) == 2
    assert np.array_equal(again.matrix(["query two", "q"]), m[[1, 0]]) and fn.pairs == 6
    again.matrix(["new one"])
    assert fn.pairs == 9


def test_crash_mid_row_is_truncated_on_open(tmp_path):
    sc = ScoreCache(tmp_path, "m1", IDS, TEXTS, Counting())
    sc.matrix(["q"])
    rows = sc.dir / "rows.f32"
    with open(rows, "ab") as f:
        f.write(b"\x00" * 7)  # half a row: the crash happened before the index line
    fn = Counting()
    sc2 = ScoreCache(tmp_path, "m1", IDS, TEXTS, fn)
    assert rows.stat().st_size == 3 * 4
    assert sc2.matrix(["zz", "q"]).tolist() == [[2, 3, 4], [1, 2, 3]] and fn.pairs == 3


def test_another_model_key_uses_another_folder(tmp_path):
    a = ScoreCache(tmp_path, "m1", IDS, TEXTS, Counting())
    a.matrix(["q"])
    b = ScoreCache(tmp_path, "m2", IDS, TEXTS, Counting())
    assert b.dir != a.dir and not b.has("q")
    c = ScoreCache(tmp_path, "m1", IDS, ["apple", "banana bread", "cherry jam"], Counting())
    assert c.dir != a.dir  # another corpus too


def test_malformed_index_line_names_file_and_line(tmp_path):
    sc = ScoreCache(tmp_path, "m1", IDS, TEXTS, Counting())
    sc.matrix(["q"])
    with open(sc.dir / "queries.tsv", "a", encoding="utf-8") as f:
        f.write("not-a-hash line\n")
    with pytest.raises(DataFormatError, match=r"queries\.tsv:2"):
        ScoreCache(tmp_path, "m1", IDS, TEXTS, Counting())


def test_missing_row_bytes_and_wrong_shapes_are_errors(tmp_path):
    sc = ScoreCache(tmp_path, "m1", IDS, TEXTS, Counting())
    sc.matrix(["q", "r"])
    with open(sc.dir / "rows.f32", "r+b") as f:
        f.truncate(4 * 4)
    with pytest.raises(DataFormatError, match="fewer than"):
        ScoreCache(tmp_path, "m1", IDS, TEXTS, Counting())
    bad = ScoreCache(tmp_path / "x", "m1", IDS, TEXTS, lambda q, d: np.zeros(1))
    with pytest.raises(RankkitError, match="returned"):
        bad.matrix(["q"])
    with pytest.raises(RankkitError, match="empty"):
        ScoreCache(tmp_path, "m1", [], [], Counting())
    assert bad.matrix([]).shape == (0, 3)


def test_read_only_leaves_a_row_being_written_alone(tmp_path):
    sc = ScoreCache(tmp_path, "m1", IDS, TEXTS, Counting())
    sc.matrix(["q"])
    with open(sc.dir / "rows.f32", "ab") as f:
        f.write(b"\x00" * 5)  # another process is writing its next row
    ro = ScoreCache(tmp_path, "m1", IDS, TEXTS, Counting(), read_only=True)
    assert (sc.dir / "rows.f32").stat().st_size == 17
    assert ro.matrix(["q"]).tolist() == [[1, 2, 3]]
    with pytest.raises(RankkitError, match="read-only"):
        ro.matrix(["missing"])
    with pytest.raises(RankkitError, match="no cached scores"):
        ScoreCache(tmp_path, "m9", IDS, TEXTS, Counting(), read_only=True)
