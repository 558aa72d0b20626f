"""Building blocks that the ready pipelines (``pipelines/*.py``) and ``rankkit demo`` share.

The reranking slot lives here in one place: :func:`reranker` builds any
registered reranker by name (``rankkit.rerankers.registry.RERANKERS``), by
default the cross-encoder with the project's own trained model
(``"minilm-scifact"``) and its tuned first-stage mix; when that stage or model
is not available the caller gets a ``MissingResourceError`` saying why (the
demo prints it as a note and continues without reranking; the ready pipelines
stop).
"""

from __future__ import annotations

import importlib.util
from typing import Any

from .errors import MissingResourceError
from .pipeline import Stage
from .rerankers.base import Reranker
from .rerankers.registry import DEFAULT_RERANKER, make_reranker
from .types import Queries, Run

#: SciFact claim-verification labels, in the order of the claims file's verdicts
SCIFACT_LABELS = ["SUPPORT", "CONTRADICT", "NOT_ENOUGH_INFO"]


def require(name: str) -> Any:
    """The public stage class ``rk.<name>``, or a clear error if its module is not installed."""
    import rankkit

    target = rankkit._LAZY.get(name)
    module = target.split(":")[0] if target else None
    if module is None or importlib.util.find_spec(module) is None:
        raise MissingResourceError(
            f"rk.{name} is not part of this rankkit installation (module {module or '?'} is "
            "missing); use a pipeline without it (e.g. pipelines/bm25_generate.py)")
    return getattr(rankkit, name)


def reranker(name: str = DEFAULT_RERANKER, model: Any = None, corpus: Any = None,
             **options: Any) -> Reranker:
    """The reranking stage ``name`` over ``corpus``; ``model=None`` is that reranker's default model.

    Unless ``interpolate=`` is given, the model's own tuned first-stage mix is
    used when it has one (``"auto"``).
    """
    options.setdefault("interpolate", "auto")
    return make_reranker(name, model=model, corpus=corpus, **options)


class NoRerank(Stage):
    """Keeps the incoming ranking as it is: the stand-in when no reranker is available."""

    name = "no-rerank"

    def transform(self, queries: Queries, run: Run | None) -> Run:
        if run is None:
            raise MissingResourceError("no-rerank needs a retriever before it")
        return run.with_queries(list(queries))
