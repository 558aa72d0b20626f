"""Training on several processes (``accelerate launch`` / ``torchrun``): who writes the result.

The trainers rankkit drives (HF ``Trainer``, sentence-transformers'
``SentenceTransformerTrainer``, trl's ``SFTTrainer`` / ``GRPOTrainer``) train
data-parallel by themselves under a launcher: they read ``RANK`` /
``WORLD_SIZE``, join the process group (gloo on CPU, NCCL on GPUs), shard each
global batch across the processes and average the gradients. What they leave
to the caller is the finished model: rankkit writes its folders (adapter,
manifest, index) on the main process only, and every other process waits at a
barrier until the folder is complete, so each returns with the same, whole
result and no two processes race on one atomic rename.

Hand-written (a few lines over ``torch.distributed``) rather than accelerate's
``PartialState``: creating that state outside the trainer would fix the
device and backend before ``TrainingArguments`` chooses them. Nothing here
imports torch: without a loaded ``torch.distributed`` there is no process
group, and the launcher's ``RANK`` decides.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _group() -> Any:
    """``torch.distributed`` when a process group is up (the trainer started it), else None."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist
    return None


def rank() -> int:
    """This process's global rank (0 when not launched on several processes)."""
    dist = _group()
    return int(dist.get_rank()) if dist is not None else int(os.environ.get("RANK", "0") or 0)


def world_size() -> int:
    """How many processes train together (1 when not launched on several processes)."""
    dist = _group()
    return int(dist.get_world_size()) if dist is not None else int(os.environ.get("WORLD_SIZE", "1") or 1)


def is_main_process() -> bool:
    """Whether this process writes results and prints them (global rank 0)."""
    return rank() == 0


def barrier() -> None:
    """Wait for every process (no-op on one process or before the process group is up)."""
    dist = _group()
    if dist is not None and dist.get_world_size() > 1:
        dist.barrier()


def on_main(fn: Callable[..., T], *args: Any, default: Any = None, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` on the main process, ``default`` elsewhere; all wait until it is done.

    The barrier is passed even when ``fn`` raises, so the other processes do not
    hang: they return ``default`` and the launcher reports the main process's error.
    """
    try:
        return fn(*args, **kwargs) if is_main_process() else default
    finally:
        barrier()


__all__ = ["rank", "world_size", "is_main_process", "barrier", "on_main"]
