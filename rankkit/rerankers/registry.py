"""Rerankers by name: the one table ``rankkit rerank --reranker``, recipes and pipelines resolve through.

A new reranker is one module under ``rankkit/rerankers/`` (a subclass of
``Reranker`` or ``ListReranker``, see ``base.py``) plus one line below; code
outside rankkit calls :func:`register_reranker` instead. Entries are
``"module:Class"`` strings imported on first use, so listing a reranker costs
nothing until it is built. Wherever a name is asked for, ``"package.module:Class"``
works too.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from ..errors import ConfigError, MissingResourceError
from .base import Reranker

#: reranker name -> "module:Class" (imported lazily) or the class itself
RERANKERS: dict[str, str | type[Reranker]] = {
    "cross-encoder": "rankkit.rerankers.cross_encoder:CrossEncoder",
    "bi-encoder": "rankkit.rerankers.biencoder:BiEncoderReranker",
    "first": "rankkit.rerankers.first:FirstReranker",
    "rank-r1": "rankkit.rerankers.rank_r1:RankR1Reranker",
}
DEFAULT_RERANKER = "cross-encoder"


def register_reranker(name: str, target: type[Reranker] | str, replace: bool = False) -> None:
    """Make ``name`` build ``target`` (a Reranker subclass or ``"module:Class"``).

    Registering a name again with another target needs ``replace=True``, so
    a plug-in cannot silently take over a built-in name.
    """
    if not isinstance(name, str) or not name.strip() or ":" in name:
        raise ConfigError(f"a reranker name is a non-empty string without ':', got {name!r}")
    if isinstance(target, str):
        if target.count(":") != 1:
            raise ConfigError(f"reranker target must be 'package.module:Class', got {target!r}")
    elif not (isinstance(target, type) and issubclass(target, Reranker)):
        raise ConfigError(f"reranker {name!r}: {target!r} is not a Reranker subclass")
    if name in RERANKERS and RERANKERS[name] != target and not replace:
        raise ConfigError(f"reranker {name!r} is already registered ({RERANKERS[name]!r}); "
                          "pass replace=True to override it")
    RERANKERS[name] = target


def reranker_class(name: str) -> type[Reranker]:
    """The class behind a registered name or a ``"package.module:Class"`` path."""
    target = RERANKERS.get(name, name if isinstance(name, str) and ":" in name else None)
    if target is None:
        raise ConfigError(f"unknown reranker {name!r} (known: {', '.join(sorted(RERANKERS))}; "
                          "or give 'package.module:Class')")
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as e:
            raise MissingResourceError(f"reranker {name!r} is not available: module {module} cannot "
                                       f"be imported ({e})") from e
        except AttributeError:
            raise ConfigError(f"reranker {name!r}: module {module} has no {attr!r}") from None
    else:
        cls = target
    if not (isinstance(cls, type) and issubclass(cls, Reranker)):
        raise ConfigError(f"reranker {name!r}: {target!r} is not a Reranker subclass")
    return cls


def reranker_options(cls: type[Reranker]) -> set[str] | None:
    """Keyword options ``cls`` accepts (None: any, it takes ``**kwargs``)."""
    params = list(inspect.signature(cls).parameters.values())
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                 inspect.Parameter.KEYWORD_ONLY)}


def make_reranker(name: str = DEFAULT_RERANKER, model: Any = None, corpus: Any = None,
                  interpolate: float | str | None = None, depth: int | None = None,
                  **options: Any) -> Reranker:
    """Build a reranker by name: ``cls(model, corpus=corpus, **options)``.

    ``model=None`` / ``corpus=None`` are left out (the class's defaults apply).
    ``interpolate`` (a weight or ``"auto"``) and ``depth`` are the base class's
    settings, so every reranker takes them. An option the class does not
    accept is a ``ConfigError`` naming the ones it does.
    """
    cls = reranker_class(name)
    if corpus is not None:
        options["corpus"] = corpus
    accepted = reranker_options(cls)
    if accepted is not None:
        unknown = sorted(set(options) - accepted)
        if unknown:
            raise ConfigError(f"reranker {name!r} ({cls.__name__}) takes no option(s) {unknown} "
                              f"(options: {', '.join(sorted(accepted)) or 'none'})")
    stage = cls(model, **options) if model is not None else cls(**options)
    if interpolate is not None:
        stage = stage.interpolated(interpolate)
    if depth is not None:
        stage = stage.with_depth(depth)
    return stage


__all__ = ["RERANKERS", "DEFAULT_RERANKER", "register_reranker", "reranker_class", "reranker_options",
           "make_reranker"]
