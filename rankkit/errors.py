"""Errors that name the problem: which file, which line, what was wrong.

Every error rankkit raises on bad input is a ``RankkitError`` so the CLI can
print it as one line and exit non-zero instead of dumping a traceback.
"""

from __future__ import annotations

from pathlib import Path


class RankkitError(Exception):
    """Base class for errors caused by user input (files, names, options)."""


class DataFormatError(RankkitError, ValueError):
    """A data file has a malformed line; the message names file and line."""

    def __init__(self, problem: str, path: str | Path | None = None, line: int | None = None):
        self.problem = problem
        self.path = str(path) if path is not None else None
        self.line = line
        where = ""
        if self.path is not None:
            where = f"{self.path}"
            if line is not None:
                where += f", line {line}"
            where += ": "
        super().__init__(where + problem)


class MissingResourceError(RankkitError, FileNotFoundError):
    """A file, index folder or model is absent; the message says how to get it."""


class ConfigError(RankkitError, ValueError):
    """An unknown name or an invalid option (measure, loss, adapter, backend...)."""
