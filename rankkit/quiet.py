"""Silencing third-party chatter in one place.

Libraries rankkit drives print progress bars and warnings of their own
(transformers' loading bars and FutureWarnings, bm25s's tokenizer bars, the
GGUF conversion bar, huggingface_hub's download bars). The CLI calls
:func:`silence_third_party` unless ``--verbose`` is given; library code calls
:func:`quiet_transformers` before loading a model so its own progress bar is
the only one a user sees. After ``silence_third_party(verbose=True)`` both
leave everything on, so ``--verbose`` really shows the libraries' output.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import sys
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

#: loggers of libraries whose INFO/WARNING chatter is not ours to show
_NOISY_LOGGERS = ("transformers", "sentence_transformers", "bm25s", "peft", "accelerate",
                  "huggingface_hub", "datasets", "faiss", "gguf", "urllib3", "filelock")

#: transformers' GGUF loader draws its own tqdm bar, which no setting turns off
_GGUF_MODULE = "transformers.modeling_gguf_pytorch_utils"

_verbose = False


def quiet_transformers() -> None:
    """transformers: errors only, no loading bars (also huggingface_hub's and the GGUF one)."""
    if _verbose:
        return
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    _after_import(_GGUF_MODULE, _silence_gguf_bar)
    if importlib.util.find_spec("transformers") is None:
        return
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def silence_third_party(verbose: bool = False) -> None:
    """Hide other libraries' progress bars, warnings and log lines (unless ``verbose``).

    rankkit's own warnings (logger ``rankkit.*``) and progress bars are left as
    they are. Cheap: imports nothing heavy (transformers is configured through
    its environment variables if it is not loaded yet).
    """
    global _verbose
    _verbose = bool(verbose)
    if verbose:
        return
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category, module=r"(?!rankkit)")
    _after_import(_GGUF_MODULE, _silence_gguf_bar)
    if "transformers" in sys.modules:
        quiet_transformers()


def _silence_gguf_bar(module: ModuleType) -> None:
    tqdm = getattr(module, "tqdm", None)
    if tqdm is None or getattr(tqdm, "_rankkit_silenced", False):
        return

    def silent(*args: Any, **kwargs: Any) -> Any:
        kwargs["disable"] = True
        return tqdm(*args, **kwargs)

    silent._rankkit_silenced = True  # type: ignore[attr-defined]
    module.tqdm = silent


def _after_import(name: str, patch: Callable[[ModuleType], None]) -> None:
    """Run ``patch(module)`` now if ``name`` is imported, else right after its import."""
    if name in sys.modules:
        patch(sys.modules[name])
        return
    if not any(isinstance(f, _PatchOnImport) and f.name == name for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport(name, patch))


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Finds ``name`` with the normal finders and patches the module once it has run."""

    def __init__(self, name: str, patch: Callable[[ModuleType], None]):
        self.name = name
        self.patch = patch

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader, patch = spec.loader, self.patch
        run_module = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run_module(module)
            patch(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec
