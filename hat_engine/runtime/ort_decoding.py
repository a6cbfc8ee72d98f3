"""Greedy and beam search over the ONNX graphs of `hat_engine.runtime.onnx_export`, on ONNX Runtime.

`OrtTranslator` offers the interface `hat_engine.model.decoding` drives (`model_config`, `encode`, `decode_step`,
no-op `eval`/`train`), so the very same search code runs on both back ends and the outputs are token-identical
up to float rounding in the logits. The encoder graph yields every layer's cross-attention K/V once; beam search
expands them to N * beam rows once (`OrtEncoderOut.index_select`) and never reorders them again. The growing
self-attention cache lives in CPU tensors that share memory with ONNX Runtime's numpy outputs, so reordering it
between steps is one row gather per tensor, as in the torch path.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import Tensor

from hat_engine.config import ArchConfig, ModelConfig
from hat_engine.errors import CheckpointError
from hat_engine.model.decoding import beam_search, greedy_search
from hat_engine.model.transformer import Cache
from hat_engine.runtime.onnx_export import META_FILE, ONNX_FORMAT, cross_names, self_names


def session_options(threads: int) -> ort.SessionOptions:
    """Explicit, reproducible settings: `threads` intra-op threads, sequential execution, all graph rewrites.

    Idle intra-op threads do not spin. Between two decoder steps the beam search runs in Python; a spinning
    worker thread takes a core from it. Measured on the 2-core dev VM, 2 threads, the `@48.9ms` entry:
    p50 63-71 ms with spinning, 40-48 ms without, 47-49 ms at 1 thread."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return opts


@dataclass
class OrtEncoderOut:
    """The encoder graph's outputs: cross-attention K/V and mask per decoder layer, keyed as in the torch cache."""

    cross: dict[str, np.ndarray]  # cross_k.i, cross_v.i (N, H, c*S, d); cross_mask.i (N, 1, 1, c*S)

    def index_select(self, order: Tensor) -> OrtEncoderOut:
        """Rows of the batch in `order` (e.g. each sentence repeated `beam` times)."""
        rows = order.cpu().numpy()
        return OrtEncoderOut({key: value[rows] for key, value in self.cross.items()})


class OrtTranslator:
    """Two ONNX Runtime sessions (encoder, decoder step) plus greedy and beam search with the semantics of
    `hat_engine.model.decoding`. Build it with `OrtTranslator.load(export_dir)`."""

    training = False  # read by hat_engine.model.decoding, which puts models in eval mode while it decodes

    def __init__(
        self,
        encoder_path: str | Path,
        decoder_path: str | Path,
        arch: ArchConfig,
        model_config: ModelConfig,
        qkv_dim: int,
        threads: int = 1,
        providers: Sequence[str] = ("CPUExecutionProvider",),
    ):
        self.arch, self.model_config, self.qkv_dim = arch, model_config, qkv_dim
        opts = session_options(threads)
        self.encoder = ort.InferenceSession(str(encoder_path), opts, providers=list(providers))
        self.decoder = ort.InferenceSession(str(decoder_path), opts, providers=list(providers))
        depth = arch.decoder_depth
        self._cross_names, self._self_names = cross_names(depth), self_names(depth)
        self._new_self_names = self_names(depth, "new_")

    @classmethod
    def load(cls, export_dir: str | Path, threads: int = 1, int8: bool = False, **kwargs) -> OrtTranslator:
        """The graphs written by `export_onnx` (the int8 ones of `quantize_export` when `int8`)."""
        export_dir = Path(export_dir)
        meta_path = export_dir / META_FILE
        if not meta_path.is_file():
            raise CheckpointError(f"{meta_path} does not exist; run hat_engine.runtime.onnx_export.export_onnx first")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != ONNX_FORMAT:
            raise CheckpointError(f"{meta_path} has format {meta.get('format')!r}, expected {ONNX_FORMAT!r}")
        key = "files_int8" if int8 else "files"
        if key not in meta:
            raise CheckpointError(f"{meta_path} lists no int8 graphs; run onnx_export.quantize_export first")
        files = meta[key]
        arch, cfg = ArchConfig.from_dict(meta["arch"]), ModelConfig.from_dict(meta["model_config"])
        return cls(
            export_dir / files["encoder"], export_dir / files["decoder"], arch, cfg, meta["qkv_dim"], threads, **kwargs
        )

    # --- the model interface hat_engine.model.decoding uses ---------------------------------------------------------

    def eval(self) -> OrtTranslator:
        return self

    def train(self, mode: bool = True) -> OrtTranslator:
        if mode:
            raise ValueError("an ONNX Runtime translator cannot train; use the torch Transformer")
        return self

    def encode(self, src_tokens: Tensor | np.ndarray) -> OrtEncoderOut:
        """src_tokens (N, S) -> every decoder layer's cross-attention K/V and mask."""
        src = np.ascontiguousarray(np.asarray(src_tokens, dtype=np.int64))
        outputs = self.encoder.run(self._cross_names, {"src_tokens": src})
        return OrtEncoderOut(dict(zip(self._cross_names, outputs, strict=True)))

    def empty_cache(self, batch: int) -> Cache:
        """Self-attention K/V with zero cached positions: (N, H, 0, d) per layer."""
        cache: Cache = {}
        for i, genes in enumerate(self.arch.decoder_layers):
            shape = (batch, genes.self_heads, 0, self.qkv_dim // genes.self_heads)
            cache[f"self_k.{i}"], cache[f"self_v.{i}"] = torch.zeros(shape), torch.zeros(shape)
        return cache

    def decode_step(
        self, tokens: Tensor, encoder_out: OrtEncoderOut, cache: Cache | None = None, step: int = 0
    ) -> tuple[Tensor, Cache]:
        """Feed the token at position `step`: tokens (N, 1) -> (logits (N, V), cache with the new self K/V).

        The cache holds CPU tensors sharing memory with numpy arrays, so `hat_engine.model.transformer.reorder_cache`
        reorders it as it does the torch cache."""
        if step >= self.model_config.max_positions:
            raise ValueError(f"decoder step {step} reaches max_positions={self.model_config.max_positions}")
        cache = dict(cache) if cache else {}
        if "self_k.0" not in cache:
            cache.update(self.empty_cache(tokens.shape[0]))
            cache.update({key: torch.from_numpy(value) for key, value in encoder_out.cross.items()})
        feed: dict[str, np.ndarray] = {
            "tokens": np.ascontiguousarray(np.asarray(tokens, dtype=np.int64)),
            "step": np.array(step, dtype=np.int64),
        }
        for name in (*self._self_names, *self._cross_names):
            feed[name] = np.ascontiguousarray(cache[name].numpy())
        logits, *new_kv = self.decoder.run(["logits", *self._new_self_names], feed)
        for name, value in zip(self._self_names, new_kv, strict=True):
            cache[name] = torch.from_numpy(value)  # shares memory with ONNX Runtime's output
        return torch.from_numpy(logits), cache

    # --- search -------------------------------------------------------------------------------------------------

    def beam_search(
        self,
        src_tokens: np.ndarray | Tensor,
        beam: int = 4,
        length_penalty: float = 1.0,
        max_len_a: float = 1.2,
        max_len_b: int = 10,
    ) -> list[list[int]]:
        """Beam search over src_tokens (B, S) -> one token list per sentence (no BOS/EOS), as
        `hat_engine.model.decoding.beam_search`."""
        return beam_search(self, _as_tensor(src_tokens), beam, length_penalty, max_len_a, max_len_b)

    def greedy_search(
        self, src_tokens: np.ndarray | Tensor, max_len_a: float = 1.2, max_len_b: int = 10
    ) -> list[list[int]]:
        """Arg-max decoding of src_tokens (B, S), as `hat_engine.model.decoding.greedy_search`."""
        return greedy_search(self, _as_tensor(src_tokens), max_len_a, max_len_b)


def _as_tensor(src_tokens: np.ndarray | Tensor) -> Tensor:
    return torch.as_tensor(np.asarray(src_tokens, dtype=np.int64))
