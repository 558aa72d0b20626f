"""LoRA-SB and LoRA-XS: frozen B and A, a trainable r x r matrix R between them (``dW = B R A``).

LoRA-SB (Ponkshe et al., 2024, "Initialization using Update Approximation is
a Silver Bullet for Extremely Efficient Low-Rank Fine-Tuning") initialises
that architecture from the first full fine-tuning update, estimated on a few
training batches of the ranking loss: ``dW ~ U_r S_r V_r^T`` (truncated SVD),
``B = U_r``, ``R = S_r``, ``A = V_r^T``, so the adapter starts as the best
rank-r approximation of the update and training moves only R (r^2 numbers
per layer). No scaling hyperparameter: R carries the scale. LoRA-XS
(Balazy et al., 2024) is the same architecture with B, A from the SVD of the
pretrained weight and R = 0.

peft 0.21 has no LoRA-SB, but its TinyLoRA layer is LoRA-XS with
``R = sum_i v_i P_i`` (``v`` trainable, ``P`` fixed; A, B, P saved with the
adapter). With ``u = r^2`` and ``P`` the identity basis of r x r matrices,
``v`` *is* R, so both methods are a ``peft.TinyLoraConfig`` whose buffers
this module sets: saving, loading and merging are peft's own. What is
hand-written here is only what peft lacks: the update estimate and the
buffer initialisation.

The update estimate (``estimate``): ``"adam"`` (default, as the reference
code) takes AdamW's first step, ``-lr * sign(g)``; ``"sgd"`` takes
``-lr * g``; ``g`` is the loss gradient w.r.t. each full target weight,
averaged over ``init_batches`` batches; ``lr`` (``init_lr``) defaults to the
first warmup step's learning rate of the run.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError

#: TinyLoRA fields LoRA-SB / LoRA-XS set themselves
FIXED = ("u", "weight_tying", "projection_seed", "save_projection", "init_weights", "init_v_bound")
ESTIMATES = ("adam", "sgd")
PREFIX = "base_model.model."


def prepare(options: dict[str, Any], total_steps: int | None) -> dict[str, Any]:
    """TinyLoRA options that make it LoRA-XS: one full r x r matrix per layer, all saved."""
    r = int(options.get("r", 16))
    if r < 1:
        raise ConfigError(f"rank r must be >= 1, got {r}")
    return {**options, "r": r, "u": r * r, "weight_tying": 0.0, "save_projection": True, "init_weights": True}


def needs_data(options: dict[str, Any]) -> bool:
    return True


def identity_basis(r: int) -> Any:
    """``P[i*r + j] = E_ij``: then ``sum_k v_k P_k`` is ``v`` reshaped to r x r."""
    import torch

    return torch.eye(r * r).reshape(r * r, r, r)


def tinylora_layers(model: Any, adapter: str = "default") -> dict[str, Any]:
    """TinyLoRA layers of a peft model, by the base model's module names."""
    out = {}
    for name, mod in model.named_modules():
        if hasattr(mod, "tinylora_A") and adapter in getattr(mod, "tinylora_A", {}):
            out[name.removeprefix(PREFIX)] = mod
    return out


def set_latent(layer: Any, B: Any, R: Any, A: Any, adapter: str = "default") -> None:
    """Make ``layer``'s adapter ``B @ R @ A`` with B, A frozen and R trainable (identity basis)."""
    import torch

    r = R.shape[0]
    dtype = layer.tinylora_A[adapter].dtype
    with torch.no_grad():
        layer.tinylora_A[adapter] = A.to(dtype).contiguous()
        layer.tinylora_B[adapter] = B.to(dtype).contiguous()
        layer.tinylora_P[adapter] = identity_basis(r).to(dtype)
        v = layer.tinylora_v[adapter][layer._tinylora_v_key[adapter]]
        v.copy_(R.reshape(-1).to(v.dtype))
    layer.r[adapter] = r


def estimate_update(model: Any, layers: dict[str, Any], data: Any, batches: int = 8,
                    lr: float | None = None, estimate: str = "adam") -> dict[str, Any]:
    """An estimate of the first full fine-tuning update of each weight in ``layers``.

    Gradients flow only into those weights (the rest is frozen meanwhile, then
    restored); the model runs in training mode, as the first step would.
    """
    import torch

    if estimate not in ESTIMATES:
        raise ConfigError(f"lora_sb: estimate must be one of {', '.join(ESTIMATES)}, got {estimate!r}")
    if batches < 1:
        raise ConfigError(f"lora_sb: init_batches must be >= 1, got {batches}")
    step = float(lr) if lr is not None else data.first_step_lr()
    examples = data.batches(int(batches))
    if not examples:
        raise ConfigError("lora_sb: no training batches to estimate the update from")
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    was_training = model.training
    for p in model.parameters():
        p.requires_grad_(False)
        p.grad = None
    for mod in layers.values():
        mod.weight.requires_grad_(True)
    try:
        model.train()
        with torch.enable_grad():
            for batch in examples:
                data.loss(model, batch).backward()
        grads = {n: mod.weight.grad.detach().float() / len(examples) for n, mod in layers.items()}
    finally:
        for n, p in model.named_parameters():
            p.grad = None
            p.requires_grad_(flags[n])
        model.train(was_training)
    if estimate == "adam":
        return {n: -step * torch.sign(g) for n, g in grads.items()}
    return {n: -step * g for n, g in grads.items()}


def truncated_svd(matrix: Any, r: int) -> tuple[Any, Any, Any]:
    """(U_r, S_r, Vh_r) of ``matrix`` (float32, exact SVD: the layers are small enough)."""
    import torch

    U, S, Vh = torch.linalg.svd(matrix.float(), full_matrices=False)
    return U[:, :r], S[:r], Vh[:r]


def _config_r(config: Any) -> int:
    return int(config.r)


def lora_sb_initialize(model: Any, config: Any, data: Any, extra: dict[str, Any]) -> Any:
    """Estimate the update on the unwrapped model, wrap with TinyLoRA, set B, R, A from its SVD."""
    import peft

    from .adapter_layers import target_linears

    if data is None:
        raise ConfigError("lora_sb initialises from training data; none was given")
    r = _config_r(config)
    layers = target_linears(model, config)
    if not layers:
        raise ConfigError(f"lora_sb: no linear layer matches target_modules={config.target_modules!r}")
    updates = estimate_update(model, layers, data, int(extra.get("init_batches", 8)),
                              extra.get("init_lr"), str(extra.get("estimate", "adam")))
    wrapped = peft.get_peft_model(model, config)
    for name, layer in tinylora_layers(wrapped).items():
        if name not in updates:
            raise ConfigError(f"lora_sb: layer {name!r} was adapted but has no update estimate")
        U, S, Vh = truncated_svd(updates[name], r)
        set_latent(layer, U, _diag(S), Vh)
    return wrapped


def lora_xs_initialize(model: Any, config: Any, data: Any, extra: dict[str, Any]) -> Any:
    """LoRA-XS: B, A from the SVD of each pretrained weight (TinyLoRA's own), R = 0."""
    import peft
    import torch

    wrapped = peft.get_peft_model(model, config)
    for layer in tinylora_layers(wrapped).values():
        A, B = layer.tinylora_A["default"], layer.tinylora_B["default"]
        r = A.shape[0]
        set_latent(layer, B, torch.zeros(r, r), A)
    return wrapped


def _diag(s: Any) -> Any:
    import torch

    return torch.diag(s)
