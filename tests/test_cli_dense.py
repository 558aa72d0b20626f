"""``rankkit index dense`` and ``rankkit search`` on a dense folder."""

from __future__ import annotations

import json

import pytest
from dense_fixtures import (  # noqa: F401  (fixtures)
    fixture_few_threads,
    fixture_tiny_model,
)

import rankkit as rk
from rankkit.cli import main

from conftest import DEMO


def _cli(*argv: str) -> int:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    return exc.value.code


def test_index_dense_then_search(tmp_path, capsys, tiny_model):
    out = tmp_path / "idx"
    code = _cli("index", "dense", "--corpus", DEMO, "--model", tiny_model, "--out", out,
                "--index", "hnsw", "-o", "M=8", "-o", "ef_search=20", "-q")
    assert code == 0, capsys.readouterr().err
    assert "indexed 30 documents" in capsys.readouterr().out
    manifest = json.loads((out / "rankkit.json").read_text())
    assert manifest["kind"] == "dense" and manifest["index"]["M"] == 8
    assert manifest["search"] == {"ef_search": 20}
    assert _cli("search", out, "--queries", DEMO, "--out", tmp_path / "run.trec", "--k", "7") == 0
    run = rk.Run.read_trec(tmp_path / "run.trec")
    assert len(run) == 10 and all(len(run.docids(q)) == 7 for q in run.qids)
    expected = (rk.load_index(out) % 7)(rk.datasets.load_beir(DEMO).queries)
    assert [run.docids(q).tolist() for q in run.qids] == \
        [expected.docids(q).tolist() for q in run.qids]


def test_index_dense_json(tmp_path, capsys, tiny_model):
    assert _cli("index", "dense", "--corpus", DEMO, "--model", tiny_model, "--out",
                tmp_path / "idx", "--json", "-q") == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["num_docs"] == 30 and printed["index"] == {"type": "flat"}
    assert printed["out"] == str(tmp_path / "idx")


@pytest.mark.parametrize("argv, message", [
    (["--model", "nosuch/encoder"], "nosuch/encoder"),
    (["--index", "annoy"], "unknown dense index type"),
    (["--index", "hnsw", "-o", "nprobe=4"], "nprobe"),
    (["--index", "hnsw", "-o", "M"], "not key=value"),
    (["--index", "hnsw", "-o", "M=1.5"], "not an integer"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "idx"
    assert _cli("index", "dense", "--corpus", DEMO, "--out", out, "-q", *argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == []
