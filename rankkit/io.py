"""Small file helpers shared by every loader and writer.

``open_text`` reads UTF-8 text (gzipped or not); a byte that is not UTF-8 is a
``DataFormatError`` naming the file, line and column instead of a traceback.

``atomic_path`` / ``atomic_dir`` make sure a crash never leaves a
half-written run file or index folder: output goes to a temporary sibling
(``.<name>.<host>-<pid>.<random>.tmp``) and is renamed into place only when
complete. The result gets the permissions a plain ``open()``/``mkdir`` would
give (the umask's, or those of the file it replaces), and temporaries left by a
killed writer on this host are removed by the next write of the same target.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import shutil
import socket
import stat
import tempfile
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .errors import DataFormatError, MissingResourceError

PathLike = str | os.PathLike


def require_file(path: PathLike, what: str = "file") -> Path:
    """Return ``path`` as a Path, or raise a clear error if it does not exist."""
    p = Path(path)
    if not p.exists():
        raise MissingResourceError(f"{what} not found: {p}")
    return p


def read_yaml_mapping(path: PathLike, what: str, keys: set[str] | None = None) -> tuple[Path, dict]:
    """A YAML file whose top level is a mapping (recipes, configs): ``(path, mapping)``.

    Invalid YAML, another top level, or (with ``keys``) an unknown top-level key is
    a ConfigError naming the file.
    """
    import yaml

    from .errors import ConfigError

    p = require_file(path, what)
    try:
        cfg = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML ({e})") from e
    if not isinstance(cfg, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level")
    unknown = sorted(set(cfg) - keys) if keys is not None else []
    if unknown:
        raise ConfigError(f"{p}: unknown key(s) {unknown} (known: {sorted(keys or ())})")
    return p, cfg


# ------------------------------------------------------------------------ reading
_READ_ERRORS = (UnicodeDecodeError, EOFError, gzip.BadGzipFile, zlib.error)


class TextFile:
    """A read-only UTF-8 text stream whose decoding errors name file, line and column.

    Reading stays the fast built-in ``TextIOWrapper``; only when it meets a bad
    byte is the file re-scanned (in binary) to find where.
    """

    def __init__(self, fh: IO[str], path: Path):
        self._fh = fh
        self.path = path

    def __enter__(self) -> TextFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._fh.close()

    def __iter__(self) -> Iterator[str]:
        try:  # one try around the loop: no cost per line
            yield from self._fh
        except _READ_ERRORS as e:
            raise self._error(e) from None

    def __next__(self) -> str:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def read(self, size: int = -1) -> str:
        try:
            return self._fh.read(size)
        except _READ_ERRORS as e:
            raise self._error(e) from None

    def readline(self, size: int = -1) -> str:
        try:
            return self._fh.readline(size)
        except _READ_ERRORS as e:
            raise self._error(e) from None

    def _error(self, e: Exception) -> DataFormatError:
        """Decoding and gzip errors as one-line DataFormatErrors naming the file and line."""
        if isinstance(e, UnicodeDecodeError):
            return not_utf8_error(self.path)
        return DataFormatError(f"corrupt or truncated gzip data ({e})", self.path,
                               _readable_lines(self.path) + 1)

    def close(self) -> None:
        self._fh.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)


def _open_binary(p: Path) -> IO[bytes]:
    with open(p, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(p, "rb") if magic == b"\x1f\x8b" else open(p, "rb")


def _readable_lines(p: Path) -> int:
    """How many whole lines can be read before a damaged file's error."""
    n = 0
    with contextlib.suppress(*_READ_ERRORS), _open_binary(p) as fh:
        for _ in fh:
            n += 1
    return n


def not_utf8_error(path: PathLike) -> DataFormatError:
    """The error for a file that is not UTF-8: its first bad byte's line and column."""
    p = Path(path)
    with _open_binary(p) as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                column = len(raw[: e.start].decode("utf-8")) + 1
                return DataFormatError(
                    f"not UTF-8 (byte 0x{raw[e.start]:02x} at column {column}); "
                    "convert it, e.g. iconv -f latin1 -t utf-8", p, lineno)
    return DataFormatError("not UTF-8", p)


def open_text(path: PathLike, what: str = "file") -> TextFile:
    """Open a UTF-8 text file for reading (a leading BOM is dropped), un-gzipping ``*.gz``."""
    p = require_file(path, what)
    if p.is_dir():
        raise MissingResourceError(f"{what} is a folder, expected a file: {p}")
    raw = _open_binary(p)
    return TextFile(io.TextIOWrapper(raw, encoding="utf-8-sig"), p)


# ------------------------------------------------------------------------ writing
_UMASK_LOCK = threading.Lock()
_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:24]


def current_umask() -> int:
    """The process umask (read by setting and restoring it, under a lock)."""
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def _final_mode(target: Path, default: int) -> int:
    """An existing target's permissions, else ``default & ~umask`` (as ``open``/``mkdir``)."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        return default & ~current_umask()


def _temp_prefix(target: Path) -> str:
    return f".{target.name}.{_HOST}-{os.getpid()}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temps(target: PathLike) -> list[Path]:
    """Delete ``target``'s temporary siblings whose writer (on this host) is dead.

    Temporaries of live writers, of other hosts, or in another naming scheme are
    left alone (a reader never looks at them anyway). Returns what was removed.
    """
    target = Path(target)
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(?P<host>[A-Za-z0-9]*)-(?P<pid>\d+)\.[^.]*\.tmp$")
    removed = []
    if not target.parent.is_dir():
        return removed
    for cand in target.parent.iterdir():
        m = pattern.match(cand.name)
        if not m or m["host"] != _HOST or _pid_alive(int(m["pid"])):
            continue
        with contextlib.suppress(OSError):
            if cand.is_dir() and not cand.is_symlink():
                shutil.rmtree(cand)
            else:
                cand.unlink()
            removed.append(cand)
    return removed


@contextlib.contextmanager
def atomic_path(path: PathLike, mode: str = "w") -> Iterator[IO]:
    """Write a file through a temporary sibling, renamed into place on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(target), suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        kwargs = {} if "b" in mode else {"encoding": "utf-8"}
        with open(tmp, mode, **kwargs) as fh:
            yield fh
        os.chmod(tmp, _final_mode(target, 0o666))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: PathLike) -> Iterator[Path]:
    """Build a folder in a temporary sibling and move it into place on success.

    An existing folder at ``path`` is replaced only once the new one is complete.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(target), suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, _final_mode(target, 0o777))
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=_temp_prefix(target), suffix=".tmp", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_text(path: PathLike, what: str = "file") -> str:
    """A whole UTF-8 text file (config, prompt): a bad byte names its line, as ``open_text``."""
    with open_text(path, what) as fh:
        return fh.read()
