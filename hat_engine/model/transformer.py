"""The static Transformer of one SubTransformer, plus the maths it shares with the SuperTransformer.

A pre-norm encoder-decoder (LayerNorm before each sublayer, a final LayerNorm on encoder and decoder) with
HAT's arbitrary encoder-decoder attention (Wang et al., ACL 2020, Sec. 3.1): decoder layer i attends to the
outputs of the last `cross_layers` encoder layers concatenated on the sequence axis. One token embedding
table of width max(encoder, decoder) is shared: the encoder reads its first `encoder_embed_dim` columns, the
decoder its first `decoder_embed_dim` columns, and the output projection is tied to the decoder slice.

Serving, latency measurement and export use only this model, extracted from the SuperTransformer
(`hat_engine.model.supernet`). `encode_with` / `decode_with` are the loops both models run, so their maths agree.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hat_engine.config import ArchConfig, DecoderLayerArch, EncoderLayerArch, ModelConfig
from hat_engine.errors import CheckpointError, ConfigError, InvalidArchError
from hat_engine.model.stepping import Cache, TorchStepper

TRANSFORMER_FORMAT = "hat_engine.transformer/1"

# --- shared maths ---------------------------------------------------------------------------------------------


_POSITION_TABLES: dict[tuple[int, int], Tensor] = {}


def sinusoidal_table(num_positions: int, dim: int) -> Tensor:
    """fairseq's sinusoidal positions for width `dim`: [sin | cos] halves, zero-padded when `dim` is odd.
    Positions count from 0 (fairseq starts at padding_idx + 1; a fixed offset changes nothing learnable).

    Cached and shared: callers must not modify the returned tensor in place. Only real tensors are cached: a
    table first computed inside an ONNX/torch.export trace is a fake tensor and must not outlive the trace.
    """
    table = _POSITION_TABLES.get((num_positions, dim))
    if table is None:
        half = dim // 2
        scale = math.log(10000.0) / max(half - 1, 1)
        freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -scale)  # (half,)
        angles = torch.arange(num_positions, dtype=torch.float32)[:, None] * freqs[None, :]  # (N, half)
        table = F.pad(torch.cat([angles.sin(), angles.cos()], dim=1), (0, dim % 2))  # (N, dim)
        if type(table) is Tensor:
            _POSITION_TABLES[(num_positions, dim)] = table
    return table


def embed(tokens: Tensor, weight: Tensor, dim: int, positions: Tensor | slice, max_positions: int) -> Tensor:
    """Scaled token embedding from the first `dim` columns of `weight`, plus sinusoidal positions.

    `positions` indexes the position table: a (B, T) tensor, or a slice giving the same positions to every row.
    """
    if tokens.size(1) > max_positions:
        raise ValueError(f"a sequence of {tokens.size(1)} tokens exceeds max_positions={max_positions}")
    table = sinusoidal_table(max_positions, dim).to(device=weight.device, dtype=weight.dtype)
    x = F.embedding(tokens, weight[:, :dim]) * math.sqrt(dim)  # (B, T, dim)
    return x + table[positions]


def source_positions(src_mask: Tensor) -> Tensor:
    """Positions counted over real tokens only, so left- and right-padded batches embed a sentence alike."""
    return (src_mask.cumsum(dim=1) - 1).clamp_(min=0)  # (B, S)


def split_heads(x: Tensor, heads: int) -> Tensor:
    b, t, _ = x.shape
    return x.view(b, t, heads, -1).transpose(1, 2)  # (B, H, T, d)


def merge_heads(x: Tensor) -> Tensor:
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)  # (B, T, H*d)


def init_linear(linear: nn.Linear) -> nn.Linear:
    nn.init.xavier_uniform_(linear.weight)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)
    return linear


@dataclass
class EncoderOut:
    """Encoder outputs the decoder reads: the last k layer outputs (each final-LayerNormed), oldest first."""

    states: tuple[Tensor, ...]  # k x (B, S, E); states[-1] is the ordinary encoder output
    src_mask: Tensor  # (B, S) True at real tokens

    def memory(self, cross_layers: int) -> tuple[Tensor, Tensor]:
        """Keys/values source and SDPA mask for a decoder layer attending to the last `cross_layers` layers."""
        assert cross_layers <= len(self.states), "encoder kept too few layer outputs"
        states = self.states[-cross_layers:]
        memory = states[0] if cross_layers == 1 else torch.cat(states, dim=1)  # (B, c*S, E)
        return memory, self.src_mask.repeat(1, cross_layers)[:, None, None, :]  # (B, 1, 1, c*S)

    def index_select(self, order: Tensor) -> EncoderOut:
        """Rows of the batch in `order` (e.g. each sentence repeated `beam` times)."""
        return EncoderOut(tuple(s.index_select(0, order) for s in self.states), self.src_mask.index_select(0, order))


def encode_with(
    src_tokens: Tensor,
    embed_weight: Tensor,
    embed_dim: int,
    layers: Sequence[nn.Module],
    norm: Callable[[Tensor], Tensor],
    keep: int,
    cfg: ModelConfig,
    training: bool,
) -> EncoderOut:
    """Run the encoder `layers` (each `layer(x, attn_mask)`) on `src_tokens` (B, S); keep the last `keep` outputs."""
    # The mask is applied even when nothing is padded: no data-dependent branch, so tracing and export see one
    # graph (an all-True mask costs a few microseconds per attention call).
    src_mask = src_tokens.ne(cfg.pad_id)  # (B, S)
    x = embed(src_tokens, embed_weight, embed_dim, source_positions(src_mask), cfg.max_positions)  # (B, S, E)
    x = F.dropout(x, cfg.dropout, training)
    attn_mask = src_mask[:, None, None, :]  # (B, 1, 1, S)
    states = []
    for i, layer in enumerate(layers):
        x = layer(x, attn_mask)
        if i >= len(layers) - keep:
            # Pre-norm layers emit the raw residual stream, so each output the decoder attends to gets the
            # encoder's final LayerNorm (HAT's post-norm layers emit normalised outputs already).
            states.append(norm(x))
    return EncoderOut(tuple(states), src_mask)


def decode_with(
    prev_tokens: Tensor,
    encoder_out: EncoderOut,
    embed_weight: Tensor,
    embed_dim: int,
    layers: Sequence[nn.Module],
    cross_layers: Sequence[int],
    norm: Callable[[Tensor], Tensor],
    cfg: ModelConfig,
    training: bool,
) -> Tensor:
    """Teacher-forced decoder over `prev_tokens` (B, T) -> logits (B, T, V). Targets are right-padded, so the
    causal mask alone keeps real positions from attending to padding."""
    x = embed(prev_tokens, embed_weight, embed_dim, slice(0, prev_tokens.size(1)), cfg.max_positions)
    x = F.dropout(x, cfg.dropout, training)  # (B, T, D)
    memories: dict[int, tuple[Tensor, Tensor]] = {}
    for layer, c in zip(layers, cross_layers, strict=True):
        if c not in memories:
            memories[c] = encoder_out.memory(c)
        x = layer(x, *memories[c])
    x = norm(x)
    return F.linear(x, embed_weight[:, :embed_dim])  # (B, T, V), tied to the decoder's embedding slice


# --- static modules -------------------------------------------------------------------------------------------


class Attention(nn.Module):
    """Multi-head attention: q/k/v project to `qkv_dim` (head size qkv_dim // heads), output to `out_dim`."""

    def __init__(self, q_in: int, kv_in: int, qkv_dim: int, heads: int, out_dim: int, dropout: float = 0.0):
        super().__init__()
        if qkv_dim % heads:
            raise InvalidArchError(f"qkv_dim={qkv_dim} is not divisible by heads={heads}")
        self.heads, self.dropout = heads, dropout
        self.q_proj = init_linear(nn.Linear(q_in, qkv_dim))
        self.k_proj = init_linear(nn.Linear(kv_in, qkv_dim))
        self.v_proj = init_linear(nn.Linear(kv_in, qkv_dim))
        self.out_proj = init_linear(nn.Linear(qkv_dim, out_dim))

    def project_kv(self, kv: Tensor) -> tuple[Tensor, Tensor]:
        return split_heads(self.k_proj(kv), self.heads), split_heads(self.v_proj(kv), self.heads)  # (B, H, S, d)

    def attend(
        self, x: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False
    ) -> Tensor:
        q = split_heads(self.q_proj(x), self.heads)  # (B, H, T, d)
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p, is_causal=is_causal)
        return self.out_proj(merge_heads(out))  # (B, T, out_dim)

    def forward(self, x: Tensor, kv: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False) -> Tensor:
        k, v = self.project_kv(kv)
        return self.attend(x, k, v, attn_mask, is_causal)


class EncoderLayer(nn.Module):
    def __init__(self, embed_dim: int, genes: EncoderLayerArch, qkv_dim: int, cfg: ModelConfig):
        super().__init__()
        e, self.dropout = embed_dim, cfg.dropout
        self.self_attn_norm = nn.LayerNorm(e)
        self.self_attn = Attention(e, e, qkv_dim, genes.self_heads, e, cfg.attention_dropout)
        self.ffn_norm = nn.LayerNorm(e)
        self.fc1 = init_linear(nn.Linear(e, genes.ffn_dim))
        self.fc2 = init_linear(nn.Linear(genes.ffn_dim, e))

    def forward(self, x: Tensor, attn_mask: Tensor | None) -> Tensor:
        h = self.self_attn_norm(x)  # (B, S, E)
        x = x + F.dropout(self.self_attn(h, h, attn_mask), self.dropout, self.training)
        h = self.fc2(F.relu(self.fc1(self.ffn_norm(x))))
        return x + F.dropout(h, self.dropout, self.training)


class DecoderLayer(nn.Module):
    def __init__(self, embed_dim: int, encoder_embed_dim: int, genes: DecoderLayerArch, qkv_dim: int, cfg: ModelConfig):
        super().__init__()
        d, e, self.dropout = embed_dim, encoder_embed_dim, cfg.dropout
        self.self_attn_norm = nn.LayerNorm(d)
        self.self_attn = Attention(d, d, qkv_dim, genes.self_heads, d, cfg.attention_dropout)
        self.cross_attn_norm = nn.LayerNorm(d)
        self.cross_attn = Attention(d, e, qkv_dim, genes.cross_heads, d, cfg.attention_dropout)
        self.ffn_norm = nn.LayerNorm(d)
        self.fc1 = init_linear(nn.Linear(d, genes.ffn_dim))
        self.fc2 = init_linear(nn.Linear(genes.ffn_dim, d))

    def _ffn(self, x: Tensor) -> Tensor:
        h = self.fc2(F.relu(self.fc1(self.ffn_norm(x))))
        return x + F.dropout(h, self.dropout, self.training)

    def forward(self, x: Tensor, memory: Tensor, memory_mask: Tensor | None) -> Tensor:
        h = self.self_attn_norm(x)  # (B, T, D)
        x = x + F.dropout(self.self_attn(h, h, is_causal=True), self.dropout, self.training)
        h = self.cross_attn_norm(x)
        x = x + F.dropout(self.cross_attn(h, memory, memory_mask), self.dropout, self.training)
        return self._ffn(x)

    def step(
        self,
        x: Tensor,
        self_kv: tuple[Tensor, Tensor] | None,
        cross_kv: tuple[Tensor, Tensor],
        memory_mask: Tensor | None,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """One cached step: x (B, 1, D); returns the new x and the self-attention K/V grown by one position."""
        h = self.self_attn_norm(x)
        k, v = self.self_attn.project_kv(h)  # (B, H, 1, d)
        if self_kv is not None:
            k, v = torch.cat([self_kv[0], k], dim=2), torch.cat([self_kv[1], v], dim=2)  # (B, H, t, d)
        # The newest query may see every cached position: no mask needed.
        x = x + F.dropout(self.self_attn.attend(h, k, v), self.dropout, self.training)
        h = self.cross_attn_norm(x)
        x = x + F.dropout(self.cross_attn.attend(h, *cross_kv, memory_mask), self.dropout, self.training)
        return self._ffn(x), (k, v)


class Transformer(nn.Module):
    """A static SubTransformer. `qkv_dim` is the search space's fixed attention width."""

    def __init__(self, arch: ArchConfig, model_config: ModelConfig, qkv_dim: int):
        super().__init__()
        if arch.max_cross_layers > arch.encoder_depth:
            raise InvalidArchError(
                f"a decoder layer attends to {arch.max_cross_layers} encoder layers but the encoder has "
                f"{arch.encoder_depth}; lower cross_layers"
            )
        self.arch, self.model_config, self.qkv_dim = arch, model_config, qkv_dim
        cfg, e, d = model_config, arch.encoder_embed_dim, arch.decoder_embed_dim
        width = max(e, d)
        self.embed_tokens = nn.Embedding(cfg.vocab_size, width, padding_idx=cfg.pad_id)
        nn.init.normal_(self.embed_tokens.weight, mean=0.0, std=width**-0.5)
        with torch.no_grad():
            self.embed_tokens.weight[cfg.pad_id].zero_()
        self.encoder_layers = nn.ModuleList(EncoderLayer(e, g, qkv_dim, cfg) for g in arch.encoder_layers)
        self.encoder_norm = nn.LayerNorm(e)
        self.decoder_layers = nn.ModuleList(DecoderLayer(d, e, g, qkv_dim, cfg) for g in arch.decoder_layers)
        self.decoder_norm = nn.LayerNorm(d)

    def encode(self, src_tokens: Tensor) -> EncoderOut:
        """src_tokens (B, S) -> the last `arch.max_cross_layers` encoder outputs and the source mask."""
        w, e, keep = self.embed_tokens.weight, self.arch.encoder_embed_dim, self.arch.max_cross_layers
        cfg = self.model_config
        return encode_with(src_tokens, w, e, self.encoder_layers, self.encoder_norm, keep, cfg, self.training)

    def decode(self, prev_output_tokens: Tensor, encoder_out: EncoderOut) -> Tensor:
        """Teacher forcing without a cache: prev_output_tokens (B, T) -> logits (B, T, V)."""
        cross = [la.cross_layers for la in self.arch.decoder_layers]
        w, d, cfg = self.embed_tokens.weight, self.arch.decoder_embed_dim, self.model_config
        layers, norm = self.decoder_layers, self.decoder_norm
        return decode_with(prev_output_tokens, encoder_out, w, d, layers, cross, norm, cfg, self.training)

    def forward(self, src_tokens: Tensor, prev_output_tokens: Tensor) -> Tensor:
        """src_tokens (B, S), prev_output_tokens (B, T) -> logits (B, T, V)."""
        return self.decode(prev_output_tokens, self.encode(src_tokens))

    def decode_step(
        self, tokens: Tensor, encoder_out: EncoderOut, cache: Cache | None = None, step: int = 0
    ) -> tuple[Tensor, Cache]:
        """Feed the token at position `step`: tokens (B, 1) -> (logits (B, V), cache updated in place)."""
        cfg, d = self.model_config, self.arch.decoder_embed_dim
        if step >= cfg.max_positions:
            raise ValueError(f"decoder step {step} reaches max_positions={cfg.max_positions}")
        cache = {} if cache is None else cache
        w = self.embed_tokens.weight
        x = embed(tokens, w, d, slice(step, step + 1), cfg.max_positions)  # (B, 1, D)
        x = F.dropout(x, cfg.dropout, self.training)
        memories: dict[int, tuple[Tensor, Tensor]] = {}
        for i, (layer, la) in enumerate(zip(self.decoder_layers, self.arch.decoder_layers, strict=True)):
            if f"cross_k.{i}" not in cache:  # first step: project the encoder memory once
                if la.cross_layers not in memories:
                    memories[la.cross_layers] = encoder_out.memory(la.cross_layers)
                memory, memory_mask = memories[la.cross_layers]
                cache[f"cross_k.{i}"], cache[f"cross_v.{i}"] = layer.cross_attn.project_kv(memory)
                cache[f"cross_mask.{i}"] = memory_mask
            self_kv = (cache[f"self_k.{i}"], cache[f"self_v.{i}"]) if f"self_k.{i}" in cache else None
            cross_kv = (cache[f"cross_k.{i}"], cache[f"cross_v.{i}"])
            x, (cache[f"self_k.{i}"], cache[f"self_v.{i}"]) = layer.step(x, self_kv, cross_kv, cache[f"cross_mask.{i}"])
        x = self.decoder_norm(x[:, 0])  # (B, D)
        return F.linear(x, w[:, :d]), cache  # (B, V)

    def stepper(self, src_tokens, rows, use_cache: bool = True) -> TorchStepper:
        """The decoder, step by step, for `hat_engine.model.decoding`."""
        return TorchStepper(self, src_tokens, rows, use_cache)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def save(self, path: str | Path, dtype: torch.dtype | None = None) -> None:
        """Write arch, model config and weights (cast to `dtype`, e.g. torch.float16, when given)."""
        payload = {
            "format": TRANSFORMER_FORMAT,
            "arch": self.arch.to_dict(),
            "model_config": self.model_config.to_dict(),
            "qkv_dim": self.qkv_dim,
            "state_dict": state_dict_for_save(self, dtype),
        }
        save_checkpoint(payload, path)

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu") -> Transformer:
        """Rebuild a Transformer saved by `save`; fp16 weights come back as fp32."""
        return cls.from_payload(load_checkpoint(path, TRANSFORMER_FORMAT, map_location), path)

    @classmethod
    def from_payload(cls, payload: dict[str, Any], path: str | Path,
                     state_dict: dict[str, Tensor] | None = None) -> Transformer:  # fmt: skip
        """The model a checkpoint payload describes (arch, model config, qkv width), holding `state_dict`
        (default: the payload's own; a fine-tuning delta passes the weights it rebuilt)."""
        try:
            arch = ArchConfig.from_dict(payload["arch"])
            model_config = ModelConfig.from_dict(payload["model_config"])
            model = cls(arch, model_config, int(payload["qkv_dim"]))
        except (KeyError, TypeError, ConfigError, InvalidArchError) as exc:
            raise CheckpointError(f"checkpoint {path} holds an invalid configuration: {exc}") from exc
        load_state_into(model, payload["state_dict"] if state_dict is None else state_dict, path)
        return model


# --- checkpoint helpers (shared with the supernet) ------------------------------------------------------------


def state_dict_for_save(model: nn.Module, dtype: torch.dtype | None) -> dict[str, Tensor]:
    return {
        k: (v.detach().cpu().to(dtype) if dtype is not None and v.is_floating_point() else v.detach().cpu())
        for k, v in model.state_dict().items()
    }


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> None:
    """Write atomically: a crash mid-write leaves the previous file intact, never a truncated one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_checkpoint(path: str | Path, expected_format: str | tuple[str, ...],
                    map_location: str | torch.device) -> dict[str, Any]:  # fmt: skip
    """The payload of a checkpoint file of `expected_format` (or one of several); CheckpointError otherwise."""
    expected = (expected_format,) if isinstance(expected_format, str) else expected_format
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; check the path or train/extract it first")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a truncated or foreign file
        raise CheckpointError(f"checkpoint {path} is corrupt or not a torch checkpoint: {exc}") from exc
    fmt = payload.get("format") if isinstance(payload, dict) else None
    if fmt not in expected:
        raise CheckpointError(f"checkpoint {path} has format {fmt!r}, expected {' or '.join(map(repr, expected))}")
    return payload


def load_state_into(model: nn.Module, state_dict: Any, path: str | Path) -> None:
    """Copy weights into `model` (casting to its dtype); a mismatch becomes a CheckpointError."""
    try:
        model.load_state_dict(state_dict, strict=True)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"checkpoint {path} does not match its configuration: {exc}") from exc
