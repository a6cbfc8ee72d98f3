"""Fine-tuned weights stored as their difference from the weights they were tuned from, compactly.

A fine-tuned SubTransformer starts from its extraction out of the SuperTransformer, which the catalog ships
anyway; so its file holds only what fine-tuning changed: tensors it left equal are omitted, the others are kept
as `new - base`, as int8 with one fp32 scale per row (matrices) or as fp16 (vectors: biases, layer norms). A
fine-tuning delta is small next to the weights, so int8 per row keeps it to a fraction of a percent of the
weights' own range, at a quarter of fp32's bytes. Whether BLEU holds is measured where the file is made
(`catalog.policy.finetune_entries` scores the rebuilt model, the one served).

Rebuilding needs the same base: the caller passes it, and the catalog checks the rebuilt weights' sha256.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from hat_engine.config import ArchConfig
from hat_engine.errors import CheckpointError
from hat_engine.model.transformer import TRANSFORMER_FORMAT, Transformer, load_checkpoint, save_checkpoint

DELTA_FORMAT = "hat_engine.transformer-delta/1"
ENCODINGS = ("int8", "fp16")


def save_delta(model: Transformer, base: Transformer, path: str | Path, encoding: str = "int8") -> dict:
    """Write `model` as its difference from `base` (same arch). Returns counts: tensors kept and omitted."""
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown delta encoding {encoding!r}: use one of {ENCODINGS}")
    if model.arch != base.arch:
        raise ValueError("a delta needs the same arch on both sides")
    tensors: dict[str, dict[str, Tensor]] = {}
    base_state = base.state_dict()
    for key, value in model.state_dict().items():
        diff = value.detach().float() - base_state[key].detach().float()
        if not torch.any(diff):
            continue
        if encoding == "int8" and diff.dim() >= 2:
            rows = diff.reshape(diff.shape[0], -1)
            scale = rows.abs().amax(dim=1).clamp_min(torch.finfo(torch.float32).tiny) / 127.0
            q = torch.round(rows / scale[:, None]).clamp(-127, 127).to(torch.int8)
            tensors[key] = {"q": q.reshape(diff.shape), "scale": scale}
        else:
            tensors[key] = {"half": diff.half()}
    payload = {"format": DELTA_FORMAT, "arch": model.arch.to_dict(), "model_config": model.model_config.to_dict(),
               "qkv_dim": model.qkv_dim, "encoding": encoding, "tensors": tensors}  # fmt: skip
    save_checkpoint(payload, path)
    return {"changed_tensors": len(tensors), "unchanged_tensors": len(base_state) - len(tensors)}


def load_delta(path: str | Path, base: Transformer) -> Transformer:
    """The model a delta file describes, rebuilt on `base` (its arch must be the file's)."""
    return _rebuilt(load_checkpoint(path, DELTA_FORMAT, "cpu"), path, base)


def load_weights(path: str | Path, base: Callable[[], Transformer]) -> Transformer:
    """A fine-tuned model file, whole (`Transformer.save`) or a delta, read once; `base` is called only for a
    delta."""
    payload = load_checkpoint(path, (TRANSFORMER_FORMAT, DELTA_FORMAT), "cpu")
    if payload["format"] == DELTA_FORMAT:
        return _rebuilt(payload, path, base())
    return Transformer.from_payload(payload, path)


def _rebuilt(payload: dict, path: str | Path, base: Transformer) -> Transformer:
    try:
        arch, tensors = ArchConfig.from_dict(payload["arch"]), payload["tensors"]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"delta {path} holds an invalid configuration: {exc}") from exc
    if base.arch != arch:
        raise CheckpointError(f"delta {path} is for arch {arch.arch_id()}, the base given is {base.arch.arch_id()}")
    state = {k: v.detach().float().clone() for k, v in base.state_dict().items()}
    unknown = sorted(set(tensors) - set(state))
    if unknown:
        raise CheckpointError(f"delta {path} names tensors its arch does not have: {unknown[:3]}")
    for key, enc in tensors.items():
        if "q" in enc:
            q, scale = enc["q"], enc["scale"]
            state[key] += (q.reshape(q.shape[0], -1).float() * scale[:, None].float()).reshape(q.shape)
        else:
            state[key] += enc["half"].float()
    return Transformer.from_payload(payload, path, state).eval()
