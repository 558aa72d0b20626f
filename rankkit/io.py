"""Small file helpers shared by every loader and writer.

``atomic_path`` / ``atomic_dir`` make sure a crash never leaves a
half-written run file or index folder: output goes to a temporary sibling and is
renamed into place only when complete.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import MissingResourceError

PathLike = str | os.PathLike


def require_file(path: PathLike, what: str = "file") -> Path:
    """Return ``path`` as a Path, or raise a clear error if it does not exist."""
    p = Path(path)
    if not p.exists():
        raise MissingResourceError(f"{what} not found: {p}")
    return p


def open_text(path: PathLike, what: str = "file") -> IO[str]:
    """Open a UTF-8 text file for reading, transparently un-gzipping ``*.gz``."""
    p = require_file(path, what)
    if p.is_dir():
        raise MissingResourceError(f"{what} is a folder, expected a file: {p}")
    with open(p, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(p, "rb"), encoding="utf-8")
    return open(p, encoding="utf-8")


@contextlib.contextmanager
def atomic_path(path: PathLike, mode: str = "w") -> Iterator[IO]:
    """Write a file through a temporary sibling, renamed into place on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        kwargs = {} if "b" in mode else {"encoding": "utf-8"}
        with open(tmp, mode, **kwargs) as fh:
            yield fh
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
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
