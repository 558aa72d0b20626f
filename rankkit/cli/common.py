"""Helpers shared by CLI commands: the common options, input resolution, output.

Every command takes the same three output options, defined once here so their
names and help texts match: ``--json`` (machine-readable output of what the
command prints), ``--quiet/-q`` (no progress bars, only the result) and
``--verbose`` (other libraries' bars, warnings and log lines shown). A command
registered with :func:`command` (``@command(app, "name")`` instead of
``@app.command("name")``) gets the three options and receives an :class:`Output`
as ``ui``; third-party chatter is silenced unless ``--verbose``.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from ..io import require_file
from ..report import format_table  # noqa: F401  (re-exported for commands)
from ..types import Qrels, Queries

JSON_HELP = "print the result as JSON (machine-readable) instead of text"
QUIET_HELP = "no progress bars or notes: print only the result"
VERBOSE_HELP = "show other libraries' progress bars, warnings and log lines"


def json_option() -> Any:
    return typer.Option(False, "--json", help=JSON_HELP)


def quiet_option() -> Any:
    return typer.Option(False, "--quiet", "-q", help=QUIET_HELP)


def verbose_option() -> Any:
    return typer.Option(False, "--verbose", help=VERBOSE_HELP)


def with_output(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--json``, ``--quiet/-q`` and ``--verbose`` to a command taking ``ui: Output``.

    The wrapper's signature (what typer reads) is the command's without ``ui``,
    plus the three options; calling it builds the :class:`Output` with :func:`output`.
    """
    sig = inspect.signature(command, eval_str=True)
    if "ui" not in sig.parameters:
        raise TypeError(f"{command.__name__} must take a 'ui: Output' parameter")
    shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=bool)
              for name, default in (("as_json", json_option()), ("quiet", quiet_option()),
                                    ("verbose", verbose_option()))]
    params = [p for p in sig.parameters.values() if p.name != "ui"]
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params] + shared

    @functools.wraps(command)
    def run(*, as_json: bool = False, quiet: bool = False, verbose: bool = False, **kwargs: Any) -> Any:
        return command(ui=output(as_json, quiet, verbose), **kwargs)

    run.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    return run


def command(group: typer.Typer, name: str) -> Callable[[Callable[..., Any]], Any]:
    """Register ``name`` on ``group`` with the shared output options (see :func:`with_output`)."""
    def register(fn: Callable[..., Any]) -> Any:
        return group.command(name)(with_output(fn))

    return register


def option_option(help: str) -> Any:
    """``-o/--option key=value``, repeatable (parsed by :func:`parse_options`)."""
    return typer.Option([], "--option", "-o", help=help)


@dataclass(frozen=True)
class Output:
    """How a command prints: the result as text or JSON on stdout, notes unless quiet."""

    as_json: bool = False
    quiet: bool = False
    verbose: bool = False

    @property
    def progress(self) -> bool:
        """Show rankkit's own progress bars (stderr)."""
        return not self.quiet

    def note(self, text: str) -> None:
        """Information beside the result; none with ``--quiet``, on stderr with ``--json``."""
        if not self.quiet:
            typer.echo(text, err=self.as_json)

    def result(self, text: str, data: Any) -> None:
        """The result: ``text`` for people, or ``data`` as JSON with ``--json``."""
        if self.as_json:
            echo_json(data)
        else:
            typer.echo(text)


def output(as_json: bool = False, quiet: bool = False, verbose: bool = False) -> Output:
    """Set up a command's output; silences third-party chatter unless ``verbose``."""
    from ..quiet import silence_third_party

    silence_third_party(verbose)
    return Output(as_json=as_json, quiet=quiet, verbose=verbose)


def parse_options(items: Sequence[str], what: str = "option") -> dict[str, Any]:
    """``["k=3", "labels=[A, B]"]`` -> ``{"k": 3, "labels": ["A", "B"]}`` (values read as YAML)."""
    import yaml

    from ..errors import ConfigError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what} {item!r} is not key=value")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def load_queries(path: Path, split: str | None = None) -> Queries:
    """Queries from a file, or from a BEIR folder (restricted to ``split`` if given)."""
    from ..datasets import read_queries
    from ..datasets.formats import find_split_file, read_qrels

    p = require_file(path, "queries")
    queries = read_queries(p)
    if p.is_dir() and split:
        judged = read_qrels(find_split_file(p, split))
        queries = queries.subset(q for q in queries if q in judged)
    return queries.check_not_empty(str(p))


def load_qrels(path: Path, split: str = "test") -> Qrels:
    """Qrels from a file, or ``qrels/<split>.tsv`` of a BEIR folder."""
    from ..datasets.formats import find_split_file, read_qrels

    p = require_file(path, "qrels")
    return read_qrels(find_split_file(p, split) if p.is_dir() else p)


def echo_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))
