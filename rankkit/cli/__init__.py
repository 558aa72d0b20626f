"""The ``rankkit`` command.

Sub-commands live in small modules listed in ``COMMAND_MODULES``; each
registers its commands on ``app`` (or on the ``index`` group) with
``common.command``, which adds the shared ``--json``, ``--quiet/-q`` and
``--verbose`` options. Errors from bad input (``RankkitError``), and any file
that cannot be read (not UTF-8, no permission, a folder where a file was
expected), print as one line and exit with status 2.
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
    "rankkit.cli.cur",
    "rankkit.cli.train",
    "rankkit.cli.train_rank_r1",
    "rankkit.cli.train_retriever",
    "rankkit.cli.train_generator",
    "rankkit.cli.rerank",
    "rankkit.cli.run",
    "rankkit.cli.clicks",
    "rankkit.cli.adapt",
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
        _fail(str(e))
    except UnicodeDecodeError as e:  # a reader that does not go through rankkit.io.open_text
        _fail(f"an input file is not UTF-8 (byte 0x{e.object[e.start]:02x} at offset {e.start})")
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        _fail(f"{where}{e.strerror or e}")
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True)
        sys.exit(130)


def _fail(message: str) -> None:
    """One line on stderr, exit status 2."""
    typer.secho(f"error: {' '.join(message.split())}", err=True, fg=typer.colors.RED)
    sys.exit(2)
