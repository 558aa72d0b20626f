"""Which layers a peft config targets, and which batch keys are model inputs.

Shared by the adapter registry (``adapters.py``: the rank check) and the
initialisations (``adapter_inits.py``, ``lora_sb.py``), kept apart so those
modules never import each other in a cycle.
"""

from __future__ import annotations

from typing import Any

#: batch keys that are model inputs (the rest are labels, masks, weights of the objective)
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")


def target_linears(model: Any, config: Any) -> dict[str, Any]:
    """The ``nn.Linear`` modules of ``model`` a peft config targets (peft's matching, its defaults)."""
    import copy

    import torch
    from peft.tuners.tuners_utils import check_target_module_exists
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

    targets = getattr(config, "target_modules", None)
    if targets is None:
        targets = DEFAULTS.get(getattr(getattr(model, "config", None), "model_type", None))
        if targets is None:
            return {}
    cfg = copy.copy(config)
    if targets == "all-linear":
        save = set(getattr(config, "modules_to_save", None) or ())
        return {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)
                and not any(n == s or n.startswith(s + ".") for s in save)}
    cfg.target_modules = targets if isinstance(targets, str) else set(targets)
    return {n: m for n, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and _is_match(check_target_module_exists(cfg, n))}


def _is_match(found: Any) -> bool:
    """peft returns True, a regex match, None/False, or an ``_ExcludedModule`` marker (falsy)."""
    import re

    return found is True or isinstance(found, re.Match)
