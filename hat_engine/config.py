"""The one definition of HAT's search space and of a SubTransformer architecture.

HAT (Wang et al., ACL 2020, Sec. 3.1): elastic embedding width (encoder and decoder separately), per-layer
FFN width and head counts, elastic decoder depth, and arbitrary encoder-decoder attention (each decoder layer
attends to the last `cross_layers` encoder layers). Everything is a frozen dataclass; YAML and dicts become
dataclasses only through the strict `from_dict` constructors here (unknown keys raise ConfigError).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

import yaml

from hat_engine.errors import ConfigError, InvalidArchError

# --- strict parsing helpers -------------------------------------------------------------------------------


def check_keys(d: Any, cls: type, where: str) -> None:
    """Raise ConfigError unless `d` is a mapping with exactly the fields of dataclass `cls` (defaults optional)."""
    label = where or cls.__name__
    if not isinstance(d, Mapping):
        raise ConfigError(f"{label} must be a mapping, got {type(d).__name__}")
    names = [f.name for f in fields(cls)]
    for key in d:
        if key not in names:
            name = f"{where}.{key}" if where else str(key)
            raise ConfigError(f"unknown key {name!r} in {cls.__name__}; allowed keys: {names}")
    required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
    missing = [name for name in required if name not in d]
    if missing:
        raise ConfigError(f"{label} is missing required key(s) {missing} for {cls.__name__}")


def _int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{path}={value!r} must be an integer")
    return value


def _float(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{path}={value!r} must be a number")
    return float(value)


def _int_tuple(value: Any, path: str) -> tuple[int, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ConfigError(f"{path}={value!r} must be a list of integers")
    out = tuple(_int(v, f"{path}[{i}]") for i, v in enumerate(value))
    if not out:
        raise ConfigError(f"{path} must not be empty")
    if any(v <= 0 for v in out):
        raise ConfigError(f"{path}={list(out)} must hold positive integers")
    return out


def _load_yaml(text: str, what: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} is not valid YAML: {exc}") from exc


def _dump_yaml(d: Mapping[str, Any]) -> str:
    # default_flow_style=None writes leaf lists/dicts inline: `ffn_dims: [512, 768]`, `- {ffn_dim: 512, ...}`.
    return yaml.safe_dump(dict(d), sort_keys=False, default_flow_style=None)


# --- architecture -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncoderLayerArch:
    """Genes of one encoder layer."""

    ffn_dim: int
    self_heads: int

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "") -> EncoderLayerArch:
        check_keys(d, cls, where)
        return cls(
            ffn_dim=_int(d["ffn_dim"], f"{where}.ffn_dim"), self_heads=_int(d["self_heads"], f"{where}.self_heads")
        )


@dataclass(frozen=True)
class DecoderLayerArch:
    """Genes of one decoder layer; `cross_layers` = how many of the last encoder layers it attends to."""

    ffn_dim: int
    self_heads: int
    cross_heads: int
    cross_layers: int

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "") -> DecoderLayerArch:
        check_keys(d, cls, where)
        return cls(**{f.name: _int(d[f.name], f"{where}.{f.name}") for f in fields(cls)})


@dataclass(frozen=True)
class ArchConfig:
    """A SubTransformer: embedding widths plus one gene record per layer (depth = number of layers)."""

    encoder_embed_dim: int
    decoder_embed_dim: int
    encoder_layers: tuple[EncoderLayerArch, ...]
    decoder_layers: tuple[DecoderLayerArch, ...]

    def __post_init__(self) -> None:
        # Lists passed by hand become tuples so the record stays hashable.
        object.__setattr__(self, "encoder_layers", tuple(self.encoder_layers))
        object.__setattr__(self, "decoder_layers", tuple(self.decoder_layers))

    @property
    def encoder_depth(self) -> int:
        return len(self.encoder_layers)

    @property
    def decoder_depth(self) -> int:
        return len(self.decoder_layers)

    @property
    def max_cross_layers(self) -> int:
        """How many final encoder layer outputs the decoder needs."""
        return max((layer.cross_layers for layer in self.decoder_layers), default=1)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["encoder_layers"] = [dict(layer) for layer in d["encoder_layers"]]
        d["decoder_layers"] = [dict(layer) for layer in d["decoder_layers"]]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ArchConfig:
        check_keys(d, cls, "")
        for key in ("encoder_layers", "decoder_layers"):
            if not isinstance(d[key], list | tuple):
                raise ConfigError(f"{key} must be a list of layer mappings, got {type(d[key]).__name__}")
        return cls(
            encoder_embed_dim=_int(d["encoder_embed_dim"], "encoder_embed_dim"),
            decoder_embed_dim=_int(d["decoder_embed_dim"], "decoder_embed_dim"),
            encoder_layers=tuple(
                EncoderLayerArch.from_dict(x, f"encoder_layers[{i}]") for i, x in enumerate(d["encoder_layers"])
            ),
            decoder_layers=tuple(
                DecoderLayerArch.from_dict(x, f"decoder_layers[{i}]") for i, x in enumerate(d["decoder_layers"])
            ),
        )

    def to_yaml(self) -> str:
        return _dump_yaml(self.to_dict())

    @classmethod
    def from_yaml(cls, text: str) -> ArchConfig:
        return cls.from_dict(_load_yaml(text, "architecture"))

    def arch_id(self) -> str:
        """Short stable id: first 10 hex chars of the sha1 of the canonical JSON."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha1(canonical.encode()).hexdigest()[:10]


# --- search space -----------------------------------------------------------------------------------------

# ONNX Runtime's GroupQueryAttention, the decoder step's self-attention (`runtime.onnx_graph`), takes head sizes
# (qkv_dim / heads) that are multiples of this only.
HEAD_SIZE_MULTIPLE = 8


@dataclass(frozen=True)
class SearchSpace:
    """The choices per gene. `qkv_dim` is fixed: the head count only changes the head size (qkv_dim // heads)."""

    embed_dims: tuple[int, ...]
    ffn_dims: tuple[int, ...]
    heads: tuple[int, ...]
    encoder_depths: tuple[int, ...]
    decoder_depths: tuple[int, ...]
    cross_layers: tuple[int, ...]
    qkv_dim: int

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name != "qkv_dim":
                object.__setattr__(self, f.name, _int_tuple(getattr(self, f.name), f.name))
        if _int(self.qkv_dim, "qkv_dim") <= 0:
            raise ConfigError(f"qkv_dim={self.qkv_dim} must be positive")
        bad = [h for h in self.heads if self.qkv_dim % h]
        if bad:
            raise ConfigError(f"qkv_dim={self.qkv_dim} is not divisible by heads {bad}; change qkv_dim or heads")
        bad = [h for h in self.heads if (self.qkv_dim // h) % HEAD_SIZE_MULTIPLE]
        if bad:
            raise ConfigError(f"qkv_dim={self.qkv_dim} / heads {bad} gives head sizes that are not multiples of "
                              f"{HEAD_SIZE_MULTIPLE}, which the ONNX decoder's attention needs; "
                              "change qkv_dim or heads")  # fmt: skip
        if min(self.cross_layers) > min(self.encoder_depths):
            raise ConfigError(
                f"cross_layers={list(self.cross_layers)} has no value <= the smallest encoder depth "
                f"{min(self.encoder_depths)}; add a smaller cross_layers choice"
            )

    # Largest sizes: what the SuperTransformer allocates.
    @property
    def max_embed_dim(self) -> int:
        return max(self.embed_dims)

    @property
    def max_ffn_dim(self) -> int:
        return max(self.ffn_dims)

    @property
    def max_heads(self) -> int:
        return max(self.heads)

    @property
    def max_encoder_depth(self) -> int:
        return max(self.encoder_depths)

    @property
    def max_decoder_depth(self) -> int:
        return max(self.decoder_depths)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {key: list(value) if isinstance(value, tuple) else value for key, value in d.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SearchSpace:
        check_keys(d, cls, "")
        return cls(**{f.name: d[f.name] for f in fields(cls)})

    def to_yaml(self) -> str:
        return _dump_yaml(self.to_dict())

    @classmethod
    def from_yaml(cls, text: str) -> SearchSpace:
        return cls.from_dict(_load_yaml(text, "search space"))

    def validate(self, arch: ArchConfig) -> None:
        """Raise InvalidArchError naming every field of `arch` that the space does not allow."""
        if not isinstance(arch, ArchConfig):
            raise InvalidArchError(f"expected an ArchConfig, got {type(arch).__name__}")
        problems: list[str] = []

        def check(path: str, value: Any, allowed: tuple[int, ...]) -> None:
            if value not in allowed:
                problems.append(f"{path}={value!r} not in {allowed}")

        check("encoder_embed_dim", arch.encoder_embed_dim, self.embed_dims)
        check("decoder_embed_dim", arch.decoder_embed_dim, self.embed_dims)
        check("len(encoder_layers)", arch.encoder_depth, self.encoder_depths)
        check("len(decoder_layers)", arch.decoder_depth, self.decoder_depths)
        for i, enc in enumerate(arch.encoder_layers):
            check(f"encoder_layers[{i}].ffn_dim", enc.ffn_dim, self.ffn_dims)
            check(f"encoder_layers[{i}].self_heads", enc.self_heads, self.heads)
        for i, dec in enumerate(arch.decoder_layers):
            check(f"decoder_layers[{i}].ffn_dim", dec.ffn_dim, self.ffn_dims)
            check(f"decoder_layers[{i}].self_heads", dec.self_heads, self.heads)
            check(f"decoder_layers[{i}].cross_heads", dec.cross_heads, self.heads)
            check(f"decoder_layers[{i}].cross_layers", dec.cross_layers, self.cross_layers)
            if isinstance(dec.cross_layers, int) and dec.cross_layers > arch.encoder_depth:
                problems.append(
                    f"decoder_layers[{i}].cross_layers={dec.cross_layers} exceeds the encoder depth "
                    f"{arch.encoder_depth}"
                )
        if problems:
            raise InvalidArchError(
                "architecture does not fit the search space: " + "; ".join(problems) + " (pick values the space lists)"
            )

    def cross_choices(self, encoder_depth: int) -> tuple[int, ...]:
        return tuple(c for c in self.cross_layers if c <= encoder_depth)

    def _build(self, embed: int, ffn: int, heads: int, enc_depth: int, dec_depth: int, cross: int) -> ArchConfig:
        return ArchConfig(
            encoder_embed_dim=embed,
            decoder_embed_dim=embed,
            encoder_layers=(EncoderLayerArch(ffn, heads),) * enc_depth,
            decoder_layers=(DecoderLayerArch(ffn, heads, heads, cross),) * dec_depth,
        )

    def largest(self, decoder_depth: int | None = None) -> ArchConfig:
        """Every gene at its maximum (cross_layers capped by the encoder depth); `decoder_depth` (one of the
        space's) gives the largest SubTransformer of that decoder depth."""
        depth = self.max_encoder_depth
        if decoder_depth is not None and decoder_depth not in self.decoder_depths:
            raise InvalidArchError(f"decoder depth {decoder_depth} not in {self.decoder_depths}")
        return self._build(
            self.max_embed_dim,
            self.max_ffn_dim,
            self.max_heads,
            depth,
            self.max_decoder_depth if decoder_depth is None else decoder_depth,
            max(self.cross_choices(depth)),
        )

    def smallest(self) -> ArchConfig:
        """Every gene at its minimum."""
        return self._build(
            min(self.embed_dims),
            min(self.ffn_dims),
            min(self.heads),
            min(self.encoder_depths),
            min(self.decoder_depths),
            min(self.cross_layers),
        )

    def sample(self, rng: random.Random) -> ArchConfig:
        """Uniform per gene: depths, widths and each layer's genes drawn independently."""
        enc_depth = rng.choice(self.encoder_depths)
        dec_depth = rng.choice(self.decoder_depths)
        return ArchConfig(
            encoder_embed_dim=rng.choice(self.embed_dims),
            decoder_embed_dim=rng.choice(self.embed_dims),
            encoder_layers=tuple(self.sample_encoder_layer(rng) for _ in range(enc_depth)),
            decoder_layers=tuple(self.sample_decoder_layer(rng, enc_depth) for _ in range(dec_depth)),
        )

    def sample_encoder_layer(self, rng: random.Random) -> EncoderLayerArch:
        return EncoderLayerArch(ffn_dim=rng.choice(self.ffn_dims), self_heads=rng.choice(self.heads))

    def sample_decoder_layer(self, rng: random.Random, encoder_depth: int) -> DecoderLayerArch:
        """A decoder layer's genes; cross_layers among those an encoder of `encoder_depth` layers allows."""
        return DecoderLayerArch(
            ffn_dim=rng.choice(self.ffn_dims),
            self_heads=rng.choice(self.heads),
            cross_heads=rng.choice(self.heads),
            cross_layers=rng.choice(self.cross_choices(encoder_depth)),
        )


# --- model-wide settings ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelConfig:
    """Settings shared by the SuperTransformer and every SubTransformer (not searched)."""

    vocab_size: int
    max_positions: int = 256
    pad_id: int = 0
    unk_id: int = 1
    bos_id: int = 2
    eos_id: int = 3
    dropout: float = 0.1
    attention_dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "max_positions", "pad_id", "unk_id", "bos_id", "eos_id"):
            _int(getattr(self, name), name)
        if self.vocab_size <= 0 or self.max_positions <= 0:
            raise ConfigError(f"vocab_size={self.vocab_size} and max_positions={self.max_positions} must be > 0")
        ids = {"pad_id": self.pad_id, "unk_id": self.unk_id, "bos_id": self.bos_id, "eos_id": self.eos_id}
        for name, value in ids.items():
            if not 0 <= value < self.vocab_size:
                raise ConfigError(f"{name}={value} must lie in [0, vocab_size={self.vocab_size})")
        if len(set(ids.values())) != len(ids):
            raise ConfigError(f"special token ids must be distinct, got {ids}")
        for name in ("dropout", "attention_dropout"):
            value = _float(getattr(self, name), name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{name}={value} must lie in [0, 1)")
            object.__setattr__(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelConfig:
        check_keys(d, cls, "")
        return cls(**dict(d))
