"""The torch side of `hat_engine.model.decoding`: a torch model's decoder, step by step, behind the `Stepper`
interface the numpy search drives.

A model qualifies with `model_config`, `encode(src) -> EncoderOut`, `decode_step(tokens, encoder_out, cache, step)`
and, for the uncached reference path, `decode(prev_tokens, encoder_out)`. While a stepper is open the model is
in eval mode under `torch.inference_mode()`; its training mode comes back on closing. Log-softmax and the ranking
of each row's likeliest tokens run in torch (in float32 for half-precision logits) on the model's device; the
search gets the few it asks for, as CPU numpy arrays.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

# Decoder KV cache: a flat dict so that a beam search can reorder it with index_select on dim 0.
#   self_k.{i}, self_v.{i}    (B, H, t, d)   grow by one position per step
#   cross_k.{i}, cross_v.{i}  (B, H, c*S, d) computed on the first step from the encoder output
#   cross_mask.{i}            (B, 1, 1, c*S) True at real source tokens
Cache = dict[str, Tensor]


def reorder_cache(cache: Cache, new_order: Tensor, include_cross: bool = True) -> Cache:
    """Rows of every cached tensor in `new_order`. Beam search may skip the cross-attention entries
    (`include_cross=False`) when rows only move between beams of the same sentence, which share them."""
    return {
        key: (value.index_select(0, new_order) if include_cross or not key.startswith("cross") else value)
        for key, value in cache.items()
    }


def top_tokens(lprobs: Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k largest log-probabilities and their ids, best first, equal values in id order (as ONNX's
    TopK), as CPU numpy arrays. `topk` picks them (a full sort of 8k tokens per row costs more than the
    decoder step at evaluation batch sizes); two stable sorts of those k put equal values in id order."""
    values, ids = torch.topk(lprobs, k, dim=-1)
    by_id = torch.argsort(ids, dim=-1, stable=True)
    values, ids = values.gather(-1, by_id), ids.gather(-1, by_id)
    best = torch.argsort(values, dim=-1, descending=True, stable=True)
    return values.gather(-1, best).cpu().numpy(), ids.gather(-1, best).cpu().numpy()


def _device(model) -> torch.device:
    param = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    return param.device if param is not None else torch.device("cpu")


class TorchStepper:
    """`Stepper` over a torch model for source rows `src[rows]` (all rows in order when `rows` is None)."""

    def __init__(self, model, src: np.ndarray, rows: np.ndarray | None, use_cache: bool):
        self.model, self.use_cache = model, use_cache
        self.device = _device(model)
        self._src, self._rows = src, rows
        self.cache: Cache = {}
        self._mode = torch.inference_mode()

    def __enter__(self) -> TorchStepper:
        self._was_training = getattr(self.model, "training", False)
        self.model.eval()
        self._mode.__enter__()
        encoder_out = self.model.encode(torch.from_numpy(self._src).to(self.device))
        if self._rows is not None:
            encoder_out = encoder_out.index_select(torch.from_numpy(self._rows).to(self.device))
        self.encoder_out = encoder_out
        return self

    def __exit__(self, *exc) -> None:
        self._mode.__exit__(*exc)
        self.model.train(self._was_training)
        self.cache, self.encoder_out = {}, None

    def __call__(self, tokens: np.ndarray, step: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        prefix = torch.from_numpy(tokens[:, : step + 1]).to(self.device)
        if self.use_cache:
            logits, self.cache = self.model.decode_step(prefix[:, step:], self.encoder_out, self.cache, step)
        else:
            logits = self.model.decode(prefix, self.encoder_out)[:, -1]  # (N, V)
        if logits.dtype in (torch.float16, torch.bfloat16):
            logits = logits.float()
        return top_tokens(F.log_softmax(logits, dim=-1), k)

    def reorder(self, order: np.ndarray) -> None:
        # Rows only move between beams of one sentence, which share cross-attention K/V: skip copying them.
        if self.use_cache:
            self.cache = reorder_cache(self.cache, torch.from_numpy(order).to(self.device), include_cross=False)
