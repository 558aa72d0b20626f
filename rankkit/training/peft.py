"""Wrapping a model with an adapter method from the registry, through the ``peft`` library.

The methods themselves (peft config, defaults, task type, hooks) are entries
of ``adapters.ADAPTERS``; this module applies one. The scoring head, and any
other weight the base checkpoint did not contain (found from the loader's
``missing_keys``), is trained and saved with the adapter via peft's
``modules_to_save``; ``rankkit.folders.load_reranker`` checks on reload that
those weights are really in the adapter folder.

Saving, loading and merging reranker folders live in ``rankkit.folders``
(inference imports them from there); they are re-exported here for training code.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..folders import (
    KIND_ADAPTER,
    KIND_MODEL,
    load_base,
    load_reranker,
    merge,
    read_manifest,
    save_reranker,
)
from .adapters import (
    ADAPTERS,
    FULL,
    AdapterMethod,
    InitData,
    check_options,
    check_rank,
    get_adapter,
    init_data,
    methods,
    register_adapter,
)

__all__ = ["ADAPTERS", "FULL", "KIND_ADAPTER", "KIND_MODEL", "AdapterMethod", "InitData", "add_adapter",
           "count_parameters", "init_data", "head_name", "load_base", "load_reranker", "merge", "methods",
           "read_manifest", "register_adapter", "save_reranker"]


def head_name(model: Any) -> str:
    """Attribute name of the classification head (``classifier`` for BERT, ``score`` for LLMs)."""
    for name in ("classifier", "score", "classification_head", "logits_proj"):
        if getattr(model, name, None) is not None:
            return name
    raise ConfigError(f"{type(model).__name__} has no recognised classification head")


def add_adapter(model: Any, method: str, options: dict[str, Any] | None = None,
                new_modules: set[str] | None = None, total_steps: int | None = None,
                task_type: str | None = None, data: InitData | None = None) -> Any:
    """Wrap ``model`` with the adapter ``method`` (or unfreeze everything when it has no config).

    The head and all ``new_modules`` go into ``modules_to_save`` so they are
    trained and stored with the adapter. ``task_type`` (a peft ``TaskType``
    name, from the objective; default ``SEQ_CLS``) must agree with the method's
    own when the method has one. ``data`` (training batches and the loss) is
    required by data-dependent initialisations (LoRA-GA, EVA, LoRA-SB);
    ``trainer.train`` passes it.
    """
    spec = get_adapter(method, task_type)
    task_type = task_type or spec.task_type or "SEQ_CLS"
    options = dict(options or {})
    check_options(method, spec, options)
    if spec.config is None:
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    import peft

    cls = getattr(peft, spec.config)
    kwargs = spec.prepare({**spec.defaults, **options}, total_steps)
    if spec.needs_data(kwargs) and data is None:
        raise ConfigError(f"adapter {method!r} initialises from training data, but none was given "
                          "(train() supplies it; add_adapter(..., data=init_data(...)))")
    extra = {k: kwargs.pop(k) for k in spec.extra_options if k in kwargs}
    new = {m.split(".")[0] for m in (new_modules or ())}
    save = ({head_name(model)} if task_type == "SEQ_CLS" else set()) | new
    if save or kwargs.get("modules_to_save"):
        kwargs["modules_to_save"] = sorted(save | set(kwargs.get("modules_to_save") or ()))
    try:
        config = cls(task_type=getattr(peft.TaskType, task_type), **kwargs)
    except TypeError as e:
        raise ConfigError(f"bad option for adapter {method!r} ({spec.config}): {e}") from e
    except ValueError as e:
        raise ConfigError(f"bad option for adapter {method!r} ({spec.config}): {e}") from e
    if spec.rank_option:
        check_rank(method, model, config, kwargs.get(spec.rank_option))
    try:
        return spec.initialize(model, config, data, extra)
    except ConfigError:
        raise
    except TypeError as e:
        raise ConfigError(f"bad option for adapter {method!r} ({spec.config}): {e}") from e
    except ValueError as e:
        raise ConfigError(f"adapter {method!r} cannot wrap {type(model).__name__}: {e}") from e


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts; for peft models the total includes the base."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
