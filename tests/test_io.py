"""rankkit.io: UTF-8 errors that name file/line/column, atomic writes with the umask's
permissions, and temporaries of killed writers cleaned up by the next write."""

from __future__ import annotations

import gzip
import os
import stat
import subprocess
import sys

import pytest

from rankkit.errors import DataFormatError
from rankkit.io import _HOST, atomic_dir, atomic_path, open_text, remove_stale_temps

from conftest import ROOT


@pytest.fixture(params=[0o022, 0o027])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_file_follows_the_umask(tmp_path, umask):
    with atomic_path(tmp_path / "run.trec") as fh:
        fh.write("q1 Q0 d1 1 1.0 x\n")
    assert mode(tmp_path / "run.trec") == 0o666 & ~umask          # 0644 / 0640, not 0600
    (tmp_path / "plain.txt").write_text("x")                         # what open() gives
    assert mode(tmp_path / "run.trec") == mode(tmp_path / "plain.txt")


def test_atomic_dir_follows_the_umask(tmp_path, umask):
    with atomic_dir(tmp_path / "idx") as tmp:
        (tmp / "data.bin").write_bytes(b"1")
    assert mode(tmp_path / "idx") == 0o777 & ~umask                # 0755 / 0750, not 0700
    assert (tmp_path / "idx" / "data.bin").read_bytes() == b"1"
    with atomic_dir(tmp_path / "idx") as tmp:                       # replacing an existing folder
        (tmp / "new.bin").write_bytes(b"2")
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == ["new.bin"]
    assert [p.name for p in tmp_path.iterdir()] == ["idx"]           # no temporaries left


def test_existing_targets_keep_their_mode(tmp_path, umask):
    target = tmp_path / "run.trec"
    target.write_text("old\n")
    os.chmod(target, 0o600)
    with atomic_path(target) as fh:
        fh.write("new\n")
    assert target.read_text() == "new\n" and mode(target) == 0o600
    folder = tmp_path / "idx"
    folder.mkdir()
    os.chmod(folder, 0o711)
    with atomic_dir(folder):
        pass
    assert mode(folder) == 0o711


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_killed_writer_leaves_a_temp_the_next_write_removes(tmp_path):
    target = tmp_path / "run.trec"
    code = ("import os, sys; from rankkit.io import atomic_path\n"
            "with atomic_path(sys.argv[1]) as fh:\n"
            "    fh.write('half'); fh.flush(); os._exit(9)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    assert subprocess.run([sys.executable, "-c", code, str(target)], env=env).returncode == 9
    left = [p.name for p in tmp_path.iterdir()]
    assert not target.exists() and len(left) == 1 and left[0].startswith(".run.trec.")
    with atomic_path(target) as fh:
        fh.write("whole\n")
    assert [p.name for p in tmp_path.iterdir()] == ["run.trec"]


def test_only_dead_writers_temps_on_this_host_are_removed(tmp_path):
    dead, live = _dead_pid(), os.getpid()
    names = {
        "dead_file": f".idx.{_HOST}-{dead}.abc123.tmp",
        "live": f".idx.{_HOST}-{live}.def456.tmp",
        "other_host": f".idx.elsewhere{_HOST}-{dead}.ghi789.tmp",
        "other_target": f".idx2.{_HOST}-{dead}.jkl012.tmp",
        "old_scheme": ".idx.k2j3h4.tmp",
    }
    for key, name in names.items():
        (tmp_path / name).write_text(key)
    dead_dir = tmp_path / f".idx.{_HOST}-{dead}.mno345.tmp"
    dead_dir.mkdir()
    (dead_dir / "part").write_text("x")
    removed = remove_stale_temps(tmp_path / "idx")
    assert sorted(p.name for p in removed) == sorted([names["dead_file"], dead_dir.name])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        names[k] for k in ("live", "other_host", "other_target", "old_scheme"))


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "x.run") as fh:
        fh.write("partial")
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "idx"):
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("gz", [False, True])
def test_not_utf8_names_file_line_and_column(tmp_path, gz):
    data = "d1\tfine\nd2\tcaf\u00e9 au lait\n".encode("latin-1")
    path = tmp_path / ("docs.tsv.gz" if gz else "docs.tsv")
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(DataFormatError) as exc, open_text(path) as fh:
        list(fh)
    assert exc.value.line == 2 and exc.value.path == str(path)
    assert "not UTF-8 (byte 0xe9 at column 7)" in str(exc.value)
    with pytest.raises(DataFormatError, match=r"line 2: not UTF-8"), open_text(path) as fh:
        fh.read()


def test_bom_and_crlf_read_like_plain_utf8(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_bytes("\ufeff1\tcaf\u00e9\r\n2\tb\r\n".encode())
    with open_text(path) as fh:
        assert list(fh) == ["1\tcaf\u00e9\n", "2\tb\n"]


def test_read_text_names_the_line(tmp_path):
    from rankkit.io import read_text

    good = tmp_path / "c.yaml"
    good.write_text("a: caf\u00e9\n", encoding="utf-8")
    assert read_text(good) == "a: caf\u00e9\n"
    bad = tmp_path / "b.yaml"
    bad.write_bytes("a: 1\nb: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"b.yaml, line 2: not UTF-8 \(byte 0xe9 at column 7\)"):
        read_text(bad)


def test_truncated_gzip_is_a_data_format_error(tmp_path):
    from rankkit.datasets import read_qrels

    path = tmp_path / "qrels.txt.gz"
    full = gzip.compress("".join(f"q{i} 0 d{i} 1\n" for i in range(5000)).encode())
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(DataFormatError, match=r"qrels.txt.gz, line \d+: corrupt or truncated gzip"):
        read_qrels(path)
