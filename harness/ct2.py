"""A homogeneous SubTransformer written into CTranslate2's TransformerSpec, and the token-by-token check that
both runtimes compute the same log-probabilities (see bench/ct2_peer.py, the benchmark that uses it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hat_engine.config import ArchConfig
from hat_engine.model.transformer import Transformer, sinusoidal_table


def ct2_incompatibility(arch: ArchConfig, qkv_dim: int) -> list[str]:
    """Why CTranslate2's TransformerSpec cannot hold this SubTransformer (empty: it can)."""
    reasons = []
    enc, dec = arch.encoder_layers, arch.decoder_layers
    if arch.encoder_embed_dim != arch.decoder_embed_dim:
        reasons.append("encoder and decoder embedding widths differ")
    if len({g.ffn_dim for g in enc + dec}) > 1:
        reasons.append("per-layer FFN widths differ")
    if len({g.self_heads for g in enc} | {h for g in dec for h in (g.self_heads, g.cross_heads)}) > 1:
        reasons.append("per-layer head counts differ")
    if any(g.cross_layers != 1 for g in dec):
        reasons.append("decoder layers attend to more than the last encoder layer (arbitrary enc-dec attention)")
    if qkv_dim != arch.encoder_embed_dim:
        reasons.append(f"attention width {qkv_dim} != embedding width {arch.encoder_embed_dim}")
    return reasons


def _np(t: torch.Tensor) -> np.ndarray:
    """A copy: CTranslate2's spec optimisation (int8) rewrites the arrays it is given in place."""
    return t.detach().to(torch.float32).numpy().copy()


def _linear(spec, linear: torch.nn.Linear) -> None:
    spec.weight = _np(linear.weight)
    spec.bias = _np(linear.bias)


def _fused(spec, linears: list[torch.nn.Linear]) -> None:
    spec.weight = np.concatenate([_np(lin.weight) for lin in linears])
    spec.bias = np.concatenate([_np(lin.bias) for lin in linears])


def _norm(spec, norm: torch.nn.LayerNorm) -> None:
    spec.gamma, spec.beta = _np(norm.weight), _np(norm.bias)


def to_ctranslate2(model: Transformer, pieces: list[str], out_dir: Path, quantization: str | None = None) -> Path:
    """Write `model` as a CTranslate2 model directory (vocabulary = the SentencePiece pieces in id order)."""
    from ctranslate2.converters.converter import Converter
    from ctranslate2.specs import common_spec, transformer_spec

    arch = model.arch
    reasons = ct2_incompatibility(arch, model.qkv_dim)
    if reasons:
        raise ValueError("CTranslate2 cannot run this SubTransformer: " + "; ".join(reasons))
    heads = arch.encoder_layers[0].self_heads
    width = arch.encoder_embed_dim
    weight = model.embed_tokens.weight[:, :width]
    positions = _np(sinusoidal_table(model.model_config.max_positions, width))

    class HatConverter(Converter):
        def _load(self):
            spec = transformer_spec.TransformerSpec.from_config(
                (arch.encoder_depth, arch.decoder_depth), heads, pre_norm=True, activation=common_spec.Activation.RELU
            )
            for side in (spec.encoder, spec.decoder):
                side.scale_embeddings = True
                side.position_encodings.encodings = positions
            spec.encoder.embeddings[0].weight = _np(weight)
            spec.decoder.embeddings.weight = _np(weight)
            spec.decoder.projection.weight = _np(weight)
            spec.decoder.projection.bias = np.zeros(weight.shape[0], dtype=np.float32)
            _norm(spec.encoder.layer_norm, model.encoder_norm)
            _norm(spec.decoder.layer_norm, model.decoder_norm)
            for s, layer in zip(spec.encoder.layer, model.encoder_layers, strict=True):
                a = layer.self_attn
                _fused(s.self_attention.linear[0], [a.q_proj, a.k_proj, a.v_proj])
                _linear(s.self_attention.linear[1], a.out_proj)
                _norm(s.self_attention.layer_norm, layer.self_attn_norm)
                _norm(s.ffn.layer_norm, layer.ffn_norm)
                _linear(s.ffn.linear_0, layer.fc1)
                _linear(s.ffn.linear_1, layer.fc2)
            for s, layer in zip(spec.decoder.layer, model.decoder_layers, strict=True):
                a, c = layer.self_attn, layer.cross_attn
                _fused(s.self_attention.linear[0], [a.q_proj, a.k_proj, a.v_proj])
                _linear(s.self_attention.linear[1], a.out_proj)
                _norm(s.self_attention.layer_norm, layer.self_attn_norm)
                _linear(s.attention.linear[0], c.q_proj)
                _fused(s.attention.linear[1], [c.k_proj, c.v_proj])
                _linear(s.attention.linear[2], c.out_proj)
                _norm(s.attention.layer_norm, layer.cross_attn_norm)
                _norm(s.ffn.layer_norm, layer.ffn_norm)
                _linear(s.ffn.linear_0, layer.fc1)
                _linear(s.ffn.linear_1, layer.fc2)
            spec.register_source_vocabulary(pieces)
            spec.register_target_vocabulary(pieces)
            spec.config.decoder_start_token = pieces[model.model_config.bos_id]
            spec.config.add_source_eos = False  # the caller passes the EOS-terminated source, as ours gets it
            return spec

    return Path(HatConverter().convert(str(out_dir), quantization=quantization, force=True))


def check_equivalence(model: Transformer, translator, pieces: list[str], ids: list[list[int]]) -> float:
    """Largest |log p| difference per target token between the runtimes, teacher-forced on `ids` (each
    EOS-terminated) as both source and target."""
    cfg = model.model_config
    worst = 0.0
    for seq in ids:
        src = torch.tensor([seq])
        prev = torch.tensor([[cfg.bos_id] + seq[:-1]])
        with torch.inference_mode():
            ours = torch.log_softmax(model.eval()(src, prev).float(), dim=-1)[0]
            ours = ours.gather(1, torch.tensor(seq)[:, None])[:, 0].numpy()
        theirs = translator.score_batch([[pieces[i] for i in seq]], [[pieces[i] for i in seq[:-1]]])[0]
        worst = max(worst, float(np.max(np.abs(np.asarray(theirs.log_probs) - ours))))
    return worst
