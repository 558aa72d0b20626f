"""peft's LoRA initialisations, wired to rankkit's data and folders: PiSSA, OLoRA, LoRA-GA, EVA.

peft implements them all (``LoraConfig(init_lora_weights=...)``); what this
module adds is the glue peft leaves to the caller:

- LoRA-GA and EVA need training data: LoRA-GA's gradient estimate runs the
  objective's loss over a few training batches (``peft.preprocess_loraga``),
  EVA's activation SVD runs the model over them
  (``peft.initialize_lora_eva_weights``); the batches come from
  :class:`~rankkit.training.adapters.InitData`;
- PiSSA, OLoRA and LoRA-GA move the principal part of each base weight into
  the adapter (the base becomes ``W - BA``), so an adapter saved as is would
  be wrong over the original base. The initial adapter is kept (a temporary
  folder named by ``model.rankkit_initial_adapter``) and
  ``rankkit.folders.save_reranker`` has peft convert the trained adapter into
  a plain LoRA of twice the rank over the original base
  (``path_initial_model_for_weight_conversion``).
"""

from __future__ import annotations

import functools
import os
from typing import Any

from ..errors import ConfigError

#: init_lora_weights values rankkit supports (others need extra machinery: loftq, corda)
SUPPORTED = ("True", "False", "gaussian", "orthogonal", "pissa", "olora", "eva", "lora_ga")
#: initialisations that read training data
NEEDS_DATA = ("eva", "lora_ga")
#: initialisations that rewrite the base weights (saved adapters are converted to plain LoRA)
MUTATES_BASE = ("pissa", "olora", "lora_ga")
#: default number of training batches a data-dependent initialisation reads
INIT_BATCHES = 8
#: EVA cycles its batches until its SVDs converge: at most this many forward passes in all
#: (MiniLM-L6, 37 layers, 32 pairs x 128 tokens a batch: ~12 s a pass on one CPU thread)
EVA_MAX_FORWARDS = 200
#: show peft's "k/n layers have converged" bar during EVA's SVD
EVA_PROGRESS = True


class _EvaNotConverged(Exception):
    """Raised from EVA's forward function to stop an SVD that does not converge."""


def _init_name(options: dict[str, Any]) -> str:
    return str(options.get("init_lora_weights", True))


def lora_prepare(options: dict[str, Any], total_steps: int | None) -> dict[str, Any]:
    """Check ``init_lora_weights``; turn ``eva_config`` / ``lora_ga_config`` mappings into peft configs."""
    import peft

    init = _init_name(options)
    if not (init in SUPPORTED or init.startswith("pissa_niter_")):
        raise ConfigError(f"init_lora_weights={init!r} is not supported by rankkit "
                          f"(choose {', '.join(SUPPORTED)} or pissa_niter_N)")
    out = dict(options)
    for key, cls in (("eva_config", peft.EvaConfig), ("lora_ga_config", peft.LoraGAConfig)):
        if isinstance(out.get(key), dict):
            try:
                out[key] = cls(**out[key])
            except (TypeError, ValueError) as e:
                raise ConfigError(f"bad {key}: {e}") from e
    if init == "lora_ga" and out.get("lora_ga_config") is None:
        out["lora_ga_config"] = peft.LoraGAConfig()
    if init == "eva" and out.get("eva_config") is None:
        out["eva_config"] = peft.EvaConfig()
    return out


def lora_needs_data(options: dict[str, Any]) -> bool:
    return _init_name(options) in NEEDS_DATA


def lora_initialize(model: Any, config: Any, data: Any, extra: dict[str, Any]) -> Any:
    """Wrap ``model`` with a LoRA config, running LoRA-GA's or EVA's data pass when asked."""
    import peft

    init = str(config.init_lora_weights)
    n = int(extra.get("init_batches", INIT_BATCHES))
    if init == "lora_ga":
        batches = _batches(data, n, "lora_ga")

        def train_step() -> None:
            for batch in batches:
                data.loss(model, batch).backward()

        peft.preprocess_loraga(model, config, train_step)
        wrapped = peft.get_peft_model(model, config)
    elif init == "eva":
        from .adapter_layers import MODEL_INPUTS

        inputs = [{k: v for k, v in b.items() if k in MODEL_INPUTS} for b in _batches(data, n, "eva")]
        wrapped = peft.get_peft_model(model, config, low_cpu_mem_usage=True)
        limit = EVA_MAX_FORWARDS
        calls = [0]

        def forward(m: Any, batch: dict[str, Any]) -> Any:
            """peft cycles the batches until every layer's SVD converges: bound the passes."""
            calls[0] += 1
            if calls[0] > limit:
                raise _EvaNotConverged
            return m(**batch)

        try:
            peft.initialize_lora_eva_weights(wrapped, inputs, forward_fn=forward,
                                             prepare_layer_inputs_fn=_eva_layer_inputs, show_progress_bar=EVA_PROGRESS)
        except _EvaNotConverged:
            raise ConfigError(f"eva: the activation SVD did not converge in {limit} forward passes over "
                              f"{len(inputs)} batches; raise init_batches or lower eva_config.tau") from None
    else:
        wrapped = peft.get_peft_model(model, config)
    if init.startswith(MUTATES_BASE):
        keep_initial_adapter(wrapped)
    return wrapped


def _eva_layer_inputs(layer_input: Any, model_input: Any, layer_name: str) -> Any:
    """The rows EVA's SVD sees: non-padding tokens, or every row of a pooled [batch, dim] input
    (BERT's pooler sees one vector per sequence; peft's default assumes [batch, tokens, dim])."""
    from peft.tuners.lora.eva import prepare_layer_inputs_fn_language_modeling as per_token

    x = layer_input[0] if isinstance(layer_input, (tuple, list)) else layer_input
    if x.dim() == 2:
        return x.contiguous()
    return per_token(x, model_input, layer_name)


def _batches(data: Any, n: int, what: str) -> list[dict[str, Any]]:
    if n < 1:
        raise ConfigError(f"{what}: init_batches must be >= 1, got {n}")
    batches = data.batches(n)
    if not batches:
        raise ConfigError(f"{what}: no training batches to initialise from")
    return batches


def keep_initial_adapter(model: Any) -> None:
    """Save the freshly initialised adapter (as plain LoRA) for peft's conversion on save."""
    import tempfile

    holder = tempfile.TemporaryDirectory(prefix="rankkit-initial-adapter-")
    path = os.path.join(holder.name, "initial")
    cfg = model.peft_config["default"]
    init = cfg.init_lora_weights
    cfg.init_lora_weights = True
    try:
        model.save_pretrained(path)
    finally:
        cfg.init_lora_weights = init
    model._rankkit_initial_holder = holder          # the folder lives as long as the model
    model.rankkit_initial_adapter = path
    model.rankkit_save_pretrained = functools.partial(save_converted, model, initial=path)


def save_converted(model: Any, folder: str | os.PathLike, initial: str) -> None:
    """Save a base-mutating LoRA as plain LoRA over the original base (rank 2r, peft's conversion).

    peft's conversion keeps only the LoRA matrices; the other adapter weights
    (the scoring head in ``modules_to_save``) are written back unchanged.
    """
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import load_file, save_file

    model.save_pretrained(str(folder), path_initial_model_for_weight_conversion=initial)
    f = os.path.join(str(folder), "adapter_model.safetensors")
    saved = load_file(f)
    for key, value in get_peft_model_state_dict(model).items():
        if "lora_A" not in key and "lora_B" not in key and key not in saved:
            saved[key] = value.detach().contiguous()
    save_file(saved, f, metadata={"format": "pt"})
