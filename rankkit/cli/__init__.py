"""The ``rankkit`` command.

Sub-commands live in small modules listed in ``COMMAND_MODULES``; each
registers its commands on ``app`` (or on the ``index`` group). Errors from bad
input (``RankkitError``) print as one line and exit with status 2.
"""

from __future__ import annotations

import importlib
import sys

import typer

app = typer.Typer(
    name="rankkit",
    help="Retrieval, re-ranking and retrieval-augmented generation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
index_app = typer.Typer(help="Build an index from a corpus.", no_args_is_help=True)
app.add_typer(index_app, name="index")

#: modules that register commands (one line per command family)
COMMAND_MODULES = [
    "rankkit.cli.bm25",
    "rankkit.cli.search",
    "rankkit.cli.evaluate",
    "rankkit.cli.demo",
    "rankkit.cli.dense",
    "rankkit.cli.train",
    "rankkit.cli.rerank",
    "rankkit.cli.run",
    "rankkit.cli.clicks",
]


def _register() -> None:
    for module in COMMAND_MODULES:
        importlib.import_module(module)


def main(argv: list[str] | None = None) -> None:
    from ..errors import RankkitError

    _register()
    try:
        app(args=argv, standalone_mode=True)
    except RankkitError as e:
        typer.secho(f"error: {e}", err=True, fg=typer.colors.RED)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True)
        sys.exit(130)
