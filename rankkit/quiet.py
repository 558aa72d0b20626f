"""Silencing third-party chatter in one place.

Libraries rankkit drives print progress bars and warnings of their own
(transformers' loading bars and FutureWarnings, bm25s's tokenizer bars, the
GGUF conversion bar, huggingface_hub's download bars). The CLI calls
:func:`silence_third_party` unless ``--verbose`` is given; library code calls
:func:`quiet_transformers` before loading a model so its own progress bar is
the only one a user sees.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import warnings

#: loggers of libraries whose INFO/WARNING chatter is not ours to show
_NOISY_LOGGERS = ("transformers", "sentence_transformers", "bm25s", "peft", "accelerate",
                  "huggingface_hub", "datasets", "faiss", "gguf", "urllib3", "filelock")


def quiet_transformers() -> None:
    """transformers: errors only, no loading bars (also huggingface_hub's bars)."""
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if importlib.util.find_spec("transformers") is None:
        return
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def silence_third_party(verbose: bool = False) -> None:
    """Hide other libraries' progress bars, warnings and log lines (unless ``verbose``).

    rankkit's own warnings (logger ``rankkit.*``) and progress bars are left as they are.
    """
    if verbose:
        return
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category, module=r"(?!rankkit)")
    if importlib.util.find_spec("transformers") is not None and _loaded("transformers"):
        quiet_transformers()


def _loaded(module: str) -> bool:
    import sys

    return module in sys.modules
