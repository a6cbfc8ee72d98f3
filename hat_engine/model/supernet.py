"""The weight-shared SuperTransformer of HAT (Wang et al., ACL 2020, Sec. 3.1-3.2).

Built from elastic ops at the largest size of every gene in the SearchSpace. `set_active(arch)` validates
the architecture once, here at the root, and hands each layer its genes; depth runs `layers[:n]`. The active
SubTransformer computes exactly what its static twin from `extract()` computes (both run `encode_with` /
`decode_with` from hat_engine.model.transformer), and the twin shares no storage with the supernet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hat_engine.config import ArchConfig, DecoderLayerArch, EncoderLayerArch, ModelConfig, SearchSpace
from hat_engine.data.tokenizer import TOKENIZER_FILE, Tokenizer
from hat_engine.errors import CheckpointError, ConfigError, DataError
from hat_engine.model.elastic import ElasticAttention, ElasticLayerNorm, ElasticLinear
from hat_engine.model.transformer import (
    DecoderLayer,
    EncoderLayer,
    EncoderOut,
    Transformer,
    decode_with,
    encode_with,
    load_checkpoint,
    load_state_into,
    save_checkpoint,
    state_dict_for_save,
)

SUPERNET_FORMAT = "hat_engine.supernet/1"


class ElasticEncoderLayer(nn.Module):
    """Pre-norm encoder layer; the active width is read from the input, FFN width and heads from its genes."""

    def __init__(self, max_embed: int, max_ffn: int, qkv_dim: int, cfg: ModelConfig):
        super().__init__()
        self.qkv_dim, self.cfg, self.dropout = qkv_dim, cfg, cfg.dropout
        attn_dropout = cfg.attention_dropout
        self.self_attn_norm = ElasticLayerNorm(max_embed)
        self.self_attn = ElasticAttention(max_embed, max_embed, qkv_dim, max_embed, attn_dropout)
        self.ffn_norm = ElasticLayerNorm(max_embed)
        self.fc1 = ElasticLinear(max_embed, max_ffn)
        self.fc2 = ElasticLinear(max_ffn, max_embed)
        self.active: EncoderLayerArch | None = None

    def set_active(self, genes: EncoderLayerArch) -> None:
        self.active = genes

    def forward(self, x: Tensor, attn_mask: Tensor | None) -> Tensor:
        genes, e = self.active, x.shape[-1]
        assert genes is not None, "set_active was not called"
        h = self.self_attn_norm(x)  # (B, S, E)
        x = x + F.dropout(self.self_attn(h, h, genes.self_heads, e, attn_mask), self.dropout, self.training)
        h = self.fc2(F.relu(self.fc1(self.ffn_norm(x), genes.ffn_dim)), e)
        return x + F.dropout(h, self.dropout, self.training)

    def extract(self, genes: EncoderLayerArch, embed_dim: int) -> EncoderLayer:
        e = embed_dim
        layer = EncoderLayer(e, genes, self.qkv_dim, self.cfg)
        layer.self_attn_norm = self.self_attn_norm.extract(e)
        layer.self_attn = self.self_attn.extract(e, e, genes.self_heads, e)
        layer.ffn_norm = self.ffn_norm.extract(e)
        layer.fc1 = self.fc1.extract(e, genes.ffn_dim)
        layer.fc2 = self.fc2.extract(genes.ffn_dim, e)
        return layer


class ElasticDecoderLayer(nn.Module):
    """Pre-norm decoder layer with self-, cross- (encoder width read from the memory) and FFN sublayers."""

    def __init__(self, max_embed: int, max_ffn: int, qkv_dim: int, cfg: ModelConfig):
        super().__init__()
        self.qkv_dim, self.cfg, self.dropout = qkv_dim, cfg, cfg.dropout
        attn_dropout = cfg.attention_dropout
        self.self_attn_norm = ElasticLayerNorm(max_embed)
        self.self_attn = ElasticAttention(max_embed, max_embed, qkv_dim, max_embed, attn_dropout)
        self.cross_attn_norm = ElasticLayerNorm(max_embed)
        self.cross_attn = ElasticAttention(max_embed, max_embed, qkv_dim, max_embed, attn_dropout)
        self.ffn_norm = ElasticLayerNorm(max_embed)
        self.fc1 = ElasticLinear(max_embed, max_ffn)
        self.fc2 = ElasticLinear(max_ffn, max_embed)
        self.active: DecoderLayerArch | None = None

    def set_active(self, genes: DecoderLayerArch) -> None:
        self.active = genes

    def forward(self, x: Tensor, memory: Tensor, memory_mask: Tensor | None) -> Tensor:
        genes, d = self.active, x.shape[-1]
        assert genes is not None, "set_active was not called"
        h = self.self_attn_norm(x)  # (B, T, D)
        h = self.self_attn(h, h, genes.self_heads, d, is_causal=True)
        x = x + F.dropout(h, self.dropout, self.training)
        h = self.cross_attn(self.cross_attn_norm(x), memory, genes.cross_heads, d, memory_mask)
        x = x + F.dropout(h, self.dropout, self.training)
        h = self.fc2(F.relu(self.fc1(self.ffn_norm(x), genes.ffn_dim)), d)
        return x + F.dropout(h, self.dropout, self.training)

    def extract(self, genes: DecoderLayerArch, embed_dim: int, encoder_embed_dim: int) -> DecoderLayer:
        d, e, g = embed_dim, encoder_embed_dim, genes
        layer = DecoderLayer(d, e, g, self.qkv_dim, self.cfg)
        layer.self_attn_norm = self.self_attn_norm.extract(d)
        layer.self_attn = self.self_attn.extract(d, d, g.self_heads, d)
        layer.cross_attn_norm = self.cross_attn_norm.extract(d)
        layer.cross_attn = self.cross_attn.extract(d, e, g.cross_heads, d)
        layer.ffn_norm = self.ffn_norm.extract(d)
        layer.fc1 = self.fc1.extract(d, g.ffn_dim)
        layer.fc2 = self.fc2.extract(g.ffn_dim, d)
        return layer


class SuperTransformer(nn.Module):
    """All SubTransformers of `space` in one set of weights; starts with the largest one active."""

    def __init__(self, space: SearchSpace, model_config: ModelConfig):
        super().__init__()
        self.space, self.model_config = space, model_config
        cfg, m, f, q = model_config, space.max_embed_dim, space.max_ffn_dim, space.qkv_dim
        self.embed_tokens = nn.Embedding(cfg.vocab_size, m, padding_idx=cfg.pad_id)
        nn.init.normal_(self.embed_tokens.weight, mean=0.0, std=m**-0.5)
        with torch.no_grad():
            self.embed_tokens.weight[cfg.pad_id].zero_()
        self.encoder_layers = nn.ModuleList(ElasticEncoderLayer(m, f, q, cfg) for _ in range(space.max_encoder_depth))
        self.encoder_norm = ElasticLayerNorm(m)
        self.decoder_layers = nn.ModuleList(ElasticDecoderLayer(m, f, q, cfg) for _ in range(space.max_decoder_depth))
        self.decoder_norm = ElasticLayerNorm(m)
        self.arch: ArchConfig = space.largest()
        self.set_active(self.arch)

    def set_active(self, arch: ArchConfig) -> None:
        """Validate `arch` against the space (InvalidArchError names the bad field) and activate it."""
        self.space.validate(arch)
        self.arch = arch
        for layer, genes in zip(self.encoder_layers, arch.encoder_layers, strict=False):
            layer.set_active(genes)
        for layer, genes in zip(self.decoder_layers, arch.decoder_layers, strict=False):
            layer.set_active(genes)

    def encode(self, src_tokens: Tensor) -> EncoderOut:
        """src_tokens (B, S) -> the active encoder's last `max_cross_layers` outputs and the source mask."""
        arch = self.arch
        return encode_with(
            src_tokens,
            self.embed_tokens.weight,
            arch.encoder_embed_dim,
            self.encoder_layers[: arch.encoder_depth],
            self.encoder_norm,
            arch.max_cross_layers,
            self.model_config,
            self.training,
        )

    def decode(self, prev_output_tokens: Tensor, encoder_out: EncoderOut) -> Tensor:
        """prev_output_tokens (B, T) -> logits (B, T, V) of the active decoder."""
        arch = self.arch
        return decode_with(
            prev_output_tokens,
            encoder_out,
            self.embed_tokens.weight,
            arch.decoder_embed_dim,
            self.decoder_layers[: arch.decoder_depth],
            [g.cross_layers for g in arch.decoder_layers],
            self.decoder_norm,
            self.model_config,
            self.training,
        )

    def forward(self, src_tokens: Tensor, prev_output_tokens: Tensor) -> Tensor:
        """src_tokens (B, S), prev_output_tokens (B, T) -> logits (B, T, V) of the active SubTransformer."""
        return self.decode(prev_output_tokens, self.encode(src_tokens))

    def extract(self, arch: ArchConfig | None = None) -> Transformer:
        """A standalone static Transformer for `arch` (default: the active one) with copied weights."""
        if arch is None:
            arch = self.arch
        else:
            self.space.validate(arch)
        e, d = arch.encoder_embed_dim, arch.decoder_embed_dim
        model = Transformer(arch, self.model_config, self.space.qkv_dim)
        model.embed_tokens.weight = nn.Parameter(self.embed_tokens.weight[:, : max(e, d)].detach().clone())
        for i, genes in enumerate(arch.encoder_layers):
            model.encoder_layers[i] = self.encoder_layers[i].extract(genes, e)
        model.encoder_norm = self.encoder_norm.extract(e)
        for i, genes in enumerate(arch.decoder_layers):
            model.decoder_layers[i] = self.decoder_layers[i].extract(genes, d, e)
        model.decoder_norm = self.decoder_norm.extract(d)
        return model.train(self.training)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def save_supernet(
    path: str | Path, model: SuperTransformer, extra: dict[str, Any] | None = None, dtype: torch.dtype | None = None
) -> None:
    """Write the space, model config and weights (cast to `dtype` when given). `extra` (e.g. step, optimizer
    state) must hold only what `torch.load(weights_only=True)` accepts: tensors, numbers, strings, lists, dicts."""
    payload = {
        "format": SUPERNET_FORMAT,
        "space": model.space.to_dict(),
        "model_config": model.model_config.to_dict(),
        "extra": dict(extra or {}),
        "state_dict": state_dict_for_save(model, dtype),
    }
    save_checkpoint(payload, path)


def export_supernet(path: str | Path, model: SuperTransformer, extra: dict[str, Any], tokenizer: Path | None) -> None:
    """What the product ships and what a run continues from: the supernet in fp16 and, beside it as spm.model,
    the tokenizer it was trained with (rewritten only when it differs). Creates the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_supernet(path, model, extra, dtype=torch.float16)
    if tokenizer is None:
        return
    beside = path.parent / TOKENIZER_FILE
    if not beside.is_file() or beside.read_bytes() != tokenizer.read_bytes():
        beside.write_bytes(tokenizer.read_bytes())


def load_supernet(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[SuperTransformer, dict[str, Any]]:
    """Rebuild a supernet saved by `save_supernet` (fp32 weights, largest arch active) and return its `extra`."""
    payload = load_checkpoint(path, SUPERNET_FORMAT, map_location)
    try:
        space = SearchSpace.from_dict(payload["space"])
        model_config = ModelConfig.from_dict(payload["model_config"])
    except (KeyError, TypeError, ConfigError) as exc:
        raise CheckpointError(f"checkpoint {path} holds an invalid configuration: {exc}") from exc
    model = SuperTransformer(space, model_config)
    load_state_into(model, payload["state_dict"], path)
    return model, dict(payload.get("extra") or {})


def load_supernet_with_tokenizer(path: Path, tokenizer_path: Path | None = None) -> tuple[SuperTransformer, Tokenizer]:
    """A supernet and the tokenizer it was trained with (default: spm.model beside it); a clear error when the
    tokenizer is missing or its vocabulary does not match the supernet's."""
    supernet, _ = load_supernet(path)
    tokenizer_path = tokenizer_path or Path(path).parent / TOKENIZER_FILE
    if not tokenizer_path.is_file():
        raise DataError(f"no tokenizer at {tokenizer_path}; pass --tokenizer PATH (e.g. data/spm.model)")
    tokenizer = Tokenizer(tokenizer_path)
    if tokenizer.vocab_size != supernet.model_config.vocab_size:
        raise DataError(
            f"{tokenizer_path} has {tokenizer.vocab_size} pieces but the supernet expects "
            f"{supernet.model_config.vocab_size}; pass the tokenizer it was trained with"
        )
    return supernet, tokenizer
