"""The evolutionary search's gene operators (HAT Sec. 3.4): mutation and crossover of SubTransformer archs.
Fresh genes are drawn with the search space's own sampling methods, so a mutated or bred arch is always one the
space allows."""

import random
from dataclasses import replace
from typing import Any

from hat_engine.config import ArchConfig, DecoderLayerArch, EncoderLayerArch, SearchSpace


def _pick(rng: random.Random, p: float, value: int, choices: tuple[int, ...]) -> int:
    """With probability p, a fresh draw from `choices`; otherwise `value` unchanged."""
    return rng.choice(choices) if rng.random() < p else value


def _fit_cross(dec: DecoderLayerArch, space: SearchSpace, rng: random.Random, encoder_depth: int) -> DecoderLayerArch:
    """A decoder layer whose cross_layers no longer fits a shallower encoder gets a fresh valid value."""
    if dec.cross_layers <= encoder_depth:
        return dec
    return replace(dec, cross_layers=rng.choice(space.cross_choices(encoder_depth)))


def mutate(arch: ArchConfig, space: SearchSpace, rng: random.Random, p: float) -> ArchConfig:
    """Redraw each gene with probability `p`. A new depth keeps the first layers and draws any new ones."""
    enc_depth = _pick(rng, p, arch.encoder_depth, space.encoder_depths)
    dec_depth = _pick(rng, p, arch.decoder_depth, space.decoder_depths)
    encoder = []
    for i in range(enc_depth):
        if i >= arch.encoder_depth:
            encoder.append(space.sample_encoder_layer(rng))
            continue
        old = arch.encoder_layers[i]
        encoder.append(
            EncoderLayerArch(
                ffn_dim=_pick(rng, p, old.ffn_dim, space.ffn_dims),
                self_heads=_pick(rng, p, old.self_heads, space.heads),
            )
        )
    decoder = []
    for i in range(dec_depth):
        if i >= arch.decoder_depth:
            decoder.append(space.sample_decoder_layer(rng, enc_depth))
            continue
        old = arch.decoder_layers[i]
        layer = DecoderLayerArch(
            ffn_dim=_pick(rng, p, old.ffn_dim, space.ffn_dims),
            self_heads=_pick(rng, p, old.self_heads, space.heads),
            cross_heads=_pick(rng, p, old.cross_heads, space.heads),
            cross_layers=_pick(rng, p, old.cross_layers, space.cross_choices(enc_depth)),
        )
        decoder.append(_fit_cross(layer, space, rng, enc_depth))
    child = ArchConfig(
        encoder_embed_dim=_pick(rng, p, arch.encoder_embed_dim, space.embed_dims),
        decoder_embed_dim=_pick(rng, p, arch.decoder_embed_dim, space.embed_dims),
        encoder_layers=tuple(encoder),
        decoder_layers=tuple(decoder),
    )
    space.validate(child)
    return child


def _mix(a: Any, b: Any, rng: random.Random) -> Any:
    """Uniform crossover of two layer records of one type: each gene from either parent with probability 1/2."""
    return type(a)(**{name: getattr(a if rng.random() < 0.5 else b, name) for name in a.__dataclass_fields__})


def _mix_layers(a: tuple, b: tuple, depth: int, rng: random.Random) -> list:
    """Position-wise: where both parents have layer i its genes are mixed, else the one that has it is copied."""
    out = []
    for i in range(depth):
        if i < len(a) and i < len(b):
            out.append(_mix(a[i], b[i], rng))
        else:
            out.append(a[i] if i < len(a) else b[i])
    return out


def crossover(a: ArchConfig, b: ArchConfig, space: SearchSpace, rng: random.Random) -> ArchConfig:
    """Uniform crossover: every gene (embed widths, depths, each layer's genes) from `a` or `b`, 50/50."""
    enc_depth = rng.choice((a.encoder_depth, b.encoder_depth))
    dec_depth = rng.choice((a.decoder_depth, b.decoder_depth))
    encoder = _mix_layers(a.encoder_layers, b.encoder_layers, enc_depth, rng)
    decoder = [
        _fit_cross(layer, space, rng, enc_depth)
        for layer in _mix_layers(a.decoder_layers, b.decoder_layers, dec_depth, rng)
    ]
    child = ArchConfig(
        encoder_embed_dim=rng.choice((a.encoder_embed_dim, b.encoder_embed_dim)),
        decoder_embed_dim=rng.choice((a.decoder_embed_dim, b.decoder_embed_dim)),
        encoder_layers=tuple(encoder),
        decoder_layers=tuple(decoder),
    )
    space.validate(child)
    return child
