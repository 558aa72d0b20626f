"""One CLI style: every command has --json, --quiet/-q and --verbose with the same help;
every bad input (a latin-1 file too) exits 2 with one line naming file and line."""

from __future__ import annotations

import json
import os

import pytest

from rankkit.cli import _register, app, main

from conftest import DEMO

COMMANDS = [("index", "bm25"), ("index", "dense"), ("search",), ("eval",), ("demo",), ("run",),
            ("train", "reranker"), ("train", "first"), ("train", "merge"), ("rerank",),
            ("simulate-clicks",)]


def _commands() -> dict[tuple[str, ...], object]:
    import typer.main

    _register()

    def walk(cmd, path=()):
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                yield from walk(sub, (*path, name))
        else:
            yield path, cmd

    return dict(walk(typer.main.get_command(app)))


def _cli(capsys, *argv) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_every_command_has_the_same_output_options():
    commands = _commands()
    assert set(COMMANDS) <= set(commands)          # the walk finds the commands we know of ...
    helps: dict[str, set[str]] = {}
    for path in commands:                          # ... and every command, new ones included, is checked
        params = {o.name: o for o in commands[path].params}
        assert params["as_json"].opts == ["--json"], path
        assert sorted(params["quiet"].opts) == ["--quiet", "-q"], path
        assert params["verbose"].opts == ["--verbose"], path
        for name in ("as_json", "quiet", "verbose"):
            helps.setdefault(name, set()).add(params[name].help)
    assert all(len(h) == 1 for h in helps.values()), helps


def test_option_parsing_is_shared_by_run_and_index_dense():
    commands = _commands()
    run_o = {o.name: o for o in commands[("run",)].params}["option"]
    dense_o = {o.name: o for o in commands[("index", "dense")].params}["option"]
    assert sorted(run_o.opts) == sorted(dense_o.opts) == ["--option", "-o"]


def test_dense_options_must_be_integers(capsys, tmp_path):
    code, _, err = _cli(capsys, "index", "dense", "--corpus", DEMO, "--out", tmp_path / "i",
                        "--index", "hnsw", "-o", "M=many")
    assert code == 2 and "--option M: 'many' is not an integer" in err
    assert err.count("\n") == 1 and not (tmp_path / "i").exists()


def _latin1(path, text):
    path.write_bytes(text.encode("latin-1"))
    return path


@pytest.mark.parametrize("kind", ["corpus.tsv", "corpus.jsonl", "corpus.trec", "queries", "qrels", "run"])
def test_latin1_input_is_one_line_exit_2(tmp_path, capsys, kind):
    qrels = _latin1(tmp_path / "qrels.txt", "1 0 d1 1\n2 0 d\u00e9 1\n" if kind == "qrels" else "1 0 d1 1\n")
    run = _latin1(tmp_path / "r.run", "1 Q0 d1 1 1.0 x\n1 Q0 d\u00e9 2 0.5 x\n" if kind == "run"
                  else "1 Q0 d1 1 1.0 x\n")
    if kind.startswith("corpus"):
        text = {"corpus.tsv": "d1\tone\nd2\tcaf\u00e9\n",
                "corpus.jsonl": '{"_id": "1", "text": "a"}\n{"_id": "2", "text": "caf\u00e9"}\n',
                "corpus.trec": "<DOC><DOCNO>d1</DOCNO>\ncaf\u00e9</DOC>\n"}[kind]
        bad = _latin1(tmp_path / kind, text)
        argv = ["index", "bm25", "--corpus", bad, "--out", tmp_path / "idx"]
    elif kind == "queries":
        bad = _latin1(tmp_path / "topics.tsv", "1\tone\n2\tcaf\u00e9\n")
        argv = ["search", DEMO / "nowhere", "--queries", bad, "--out", tmp_path / "x.run"]
    else:
        bad = qrels if kind == "qrels" else run
        argv = ["eval", run, "--qrels", qrels]
    code, out, err = _cli(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{bad}, line 2: not UTF-8 (byte 0xe9 at column" in err
    assert not (tmp_path / "idx").exists() and not (tmp_path / "x.run").exists()


def test_unreadable_output_path_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, _, err = _cli(capsys, "search", _bm25_index(tmp_path, capsys), "--queries", DEMO,
                        "--out", tmp_path / "file" / "run.trec", "-q")
    assert code == 2 and err.count("\n") == 1 and str(tmp_path / "file") in err


def _bm25_index(tmp_path, capsys):
    out = tmp_path / "idx"
    code, _, err = _cli(capsys, "index", "bm25", "--corpus", DEMO, "--out", out, "-q")
    assert code == 0, err
    return out


def test_bm25s_bars_only_with_verbose(tmp_path, capsys, monkeypatch):
    from rankkit import quiet

    monkeypatch.setattr(quiet, "_verbose", False)  # --verbose below must not outlive this test
    code, out, err = _cli(capsys, "index", "bm25", "--corpus", DEMO, "--out", tmp_path / "a")
    assert code == 0 and "BM25S" not in err and out.startswith("indexed 30 documents")
    code, out, err = _cli(capsys, "index", "bm25", "--corpus", DEMO, "--out", tmp_path / "b", "--verbose")
    assert code == 0 and "BM25S" in err


def test_json_and_quiet_outputs(tmp_path, capsys):
    code, out, _ = _cli(capsys, "index", "bm25", "--corpus", DEMO, "--out", tmp_path / "idx", "--json")
    assert code == 0 and json.loads(out)["num_docs"] == 30 and json.loads(out)["kind"] == "bm25"
    code, out, err = _cli(capsys, "search", tmp_path / "idx", "--queries", DEMO, "--out",
                          tmp_path / "r.run", "--json", "-q")
    assert code == 0 and err == ""
    assert json.loads(out) == {"queries": 10, "hits": json.loads(out)["hits"], "empty_queries": 0,
                               "index": str(tmp_path / "idx"), "k": 100, "out": str(tmp_path / "r.run")}
    code, out, err = _cli(capsys, "search", tmp_path / "idx", "--queries", DEMO, "--out", tmp_path / "s.run")
    assert code == 0 and "BM25 search" in err                   # rankkit's own bar, unless -q
    code, out, _ = _cli(capsys, "eval", tmp_path / "r.run", "--qrels", DEMO, "--json", "--quiet")
    assert code == 0 and set(json.loads(out)["r.run"]) == {"nDCG@10"}


def test_a_module_imported_later_is_patched_once_loaded(tmp_path, monkeypatch):
    import importlib
    import sys

    from rankkit import quiet

    (tmp_path / "rk_fake_gguf.py").write_text(
        "def tqdm(items, **kw):\n    return ('bar', kw.get('disable', False))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    quiet._after_import("rk_fake_gguf", quiet._silence_gguf_bar)
    module = importlib.import_module("rk_fake_gguf")
    try:
        assert module.tqdm([1]) == ("bar", True)                   # the bar is disabled
        quiet._silence_gguf_bar(module)                             # idempotent
        assert module.tqdm([1], disable=False) == ("bar", True)
    finally:
        sys.modules.pop("rk_fake_gguf", None)


def test_train_json_is_the_only_stdout_and_quiet_hides_the_trainer(tmp_path):
    import subprocess
    import sys

    import yaml
    from tiny_models import build_tiny_bert

    from conftest import ROOT, shared

    triples = shared("msmarco", "triples.sample.tsv")
    cfg = {"base_model": str(build_tiny_bert(tmp_path / "base")), "output_dir": str(tmp_path / "m"),
           "max_length": 32, "adapter": {"method": "lora", "options": {"r": 2}},
           "data": [{"source": "triples", "path": str(triples)}],
           "train": {"steps": 2, "batch_size": 2, "logging_steps": 1, "threads": 1}}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for flags in (["--json"], ["--json", "-q"]):
        proc = subprocess.run([sys.executable, "-m", "rankkit", "train", "reranker", "--config",
                               str(tmp_path / "cfg.yaml"), *flags], capture_output=True, text=True,
                              env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["steps"] == 2            # the trainer's log lines went elsewhere
        assert ("'loss'" in proc.stderr) == ("-q" not in flags)
