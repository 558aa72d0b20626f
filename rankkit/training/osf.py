"""Orthogonal-subspace fine-tuning (OSF) of a reranker, for training domain after domain.

OSF (Nayak et al., 2025, "Sculpting Subspaces: Constrained Full Fine-Tuning
in LLMs for Continual Learning") splits each target weight by its SVD,
``W = U_h S_h V_h^T + U_l S_l V_l^T``: the top ``effective_rank`` singular
directions (what earlier domains rely on) are frozen, and only the rest is
trained, with gradients projected orthogonal to ``U_h`` / ``V_h``. peft 0.21
has it (``OSFConfig``); this module adds only what a rankkit reranker needs
beyond peft:

- the scoring head: peft's OSF ignores ``modules_to_save`` (and freezes every
  weight outside its SVD factors), so the head is trained in place here;
- exactness under AdamW: peft projects the *gradients*, but Adam's
  per-element scaling moves the update out of the allowed subspace again;
  after every optimizer step the trained factors are projected back
  (``reproject``), so ``U_h^T dW = 0`` and ``dW V_h = 0`` hold to float
  precision (measured in tests/test_osf.py; with peft's gradient projection
  alone, 4 AdamW steps on the tiny test model leave a relative projection of
  0.32 of the update on the preserved subspace);
- saving: the folder is the merged full model (``W + dW`` and the head, a
  plain ``cross-encoder`` folder), so the next domain trains on from it with
  ``base_model: <that folder>``, taking the SVD of the updated weights.

Options: ``effective_rank`` (preserved rank per layer: an integer, or a
fraction in (0, 1] of the layer's smaller side; default 0.5),
``rank_pattern`` (regex -> rank per layer), ``target_modules``.
"""

from __future__ import annotations

import copy
import functools
import os
from typing import Any

from ..errors import ConfigError

#: OSFConfig fields rankkit sets itself
FIXED = ("init_weights", "target_svd_config", "modules_to_save")
PREFIX = "base_model.model."


def prepare(options: dict[str, Any], total_steps: int | None) -> dict[str, Any]:
    """Check the preserved ranks: a positive integer, or a fraction in (0, 1)."""
    for key, rank in [("effective_rank", options.get("effective_rank")),
                      *((f"rank_pattern[{k!r}]", v) for k, v in (options.get("rank_pattern") or {}).items())]:
        if rank is None:
            continue
        if isinstance(rank, bool) or not isinstance(rank, (int, float)) or rank <= 0 or \
                isinstance(rank, float) and rank >= 1:
            raise ConfigError(f"osf: {key} must be an integer >= 1 or a fraction in (0, 1), got {rank!r}")
    return options


def osf_layers(model: Any) -> dict[str, Any]:
    """OSF layers of a peft model, by the base model's module names."""
    return {name.removeprefix(PREFIX): mod for name, mod in model.named_modules()
            if hasattr(mod, "osf_svd_params") and len(mod.osf_svd_params)}


def initialize(model: Any, config: Any, data: Any, extra: dict[str, Any]) -> Any:
    """Wrap with peft's OSF, train the head (and other new modules) in place, save merged."""
    import peft

    from ..folders import KIND_MODEL

    heads = list(config.modules_to_save or ())
    config.modules_to_save = None          # ignored by OSF: rankkit trains these modules itself
    wrapped = peft.get_peft_model(model, config)
    if not osf_layers(wrapped):
        raise ConfigError(f"osf: no linear layer matches target_modules={config.target_modules!r}")
    inner = wrapped.get_base_model()
    for name in heads:
        module = inner.get_submodule(name)
        for p in module.parameters():
            p.requires_grad_(True)
    wrapped.rankkit_kind = KIND_MODEL
    wrapped.rankkit_save_pretrained = functools.partial(save_merged, wrapped)
    return wrapped


def save_merged(model: Any, folder: str | os.PathLike) -> None:
    """Save ``W + dW`` of every OSF layer with the rest of the model as a plain HF folder."""
    merged = copy.deepcopy(model).merge_and_unload()
    merged.save_pretrained(str(folder))


def _complement(layer: Any, adapter: str) -> tuple[Any, Any]:
    """Projections onto the trainable subspace: (left, right) as functions of a factor."""
    if adapter in layer._osf_U_high:
        U_h = layer._osf_U_high[adapter]

        def left(U: Any) -> Any:
            return U - U_h @ (U_h.T @ U)
    else:                                   # square U: I - U_h U_h^T = U_l0 U_l0^T
        U_0 = layer._osf_U_low_init[adapter]

        def left(U: Any) -> Any:
            return U_0 @ (U_0.T @ U)
    if adapter in layer._osf_V_high:
        V_h = layer._osf_V_high[adapter]

        def right(V: Any) -> Any:
            return V - (V @ V_h.T) @ V_h
    else:
        V_0 = layer._osf_V_low_init[adapter]

        def right(V: Any) -> Any:
            return (V @ V_0.T) @ V_0
    return left, right


def reproject(model: Any) -> None:
    """Project every trained ``U_l`` / ``V_l`` back orthogonal to the preserved singular vectors."""
    import torch

    with torch.no_grad():
        for layer in osf_layers(model).values():
            for adapter, params in layer.osf_svd_params.items():
                left, right = _complement(layer, adapter)
                params["U_low"].copy_(left(params["U_low"]))
                params["V_low"].copy_(right(params["V_low"]))


def callbacks(model: Any) -> list[Any]:
    from transformers import TrainerCallback

    class KeepOrthogonal(TrainerCallback):
        """After each optimizer step: AdamW's per-element scaling left the subspace; go back."""

        def on_optimizer_step(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            reproject(model)

    return [KeepOrthogonal()]


def preserved_projection(before: Any, after: Any, rank: int) -> float:
    """``(||U_h^T dW||_F + ||dW V_h||_F) / ||dW||_F`` for the top-``rank`` singular vectors of ``before``.

    0 when the update leaves the preserved subspace untouched (what OSF promises).
    """
    import torch

    U, _, Vh = torch.linalg.svd(before.float(), full_matrices=False)
    dW = after.float() - before.float()
    norm = torch.linalg.norm(dW)
    if float(norm) == 0.0:
        return 0.0
    U_h, V_h = U[:, :rank], Vh[:rank]
    return float((torch.linalg.norm(U_h.T @ dW) + torch.linalg.norm(dW @ V_h.T)) / norm)


__all__ = ["callbacks", "initialize", "osf_layers", "prepare", "preserved_projection", "reproject", "save_merged"]
