"""The training run's settings (`TrainConfig`, stored in every checkpoint), its learning-rate schedule and the
SubTransformers an update trains."""

import dataclasses
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hat_engine.config import ArchConfig, SearchSpace
from hat_engine.errors import ConfigError


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; stored in every checkpoint."""

    data_dir: str = "data"
    space: SearchSpace | str = "configs/space.yaml"  # a YAML path (read once, here) or the space itself
    out_dir: str = "runs/supernet"
    seed: int = 1
    max_tokens: int = 4096
    lr: float = 1e-3
    warmup_steps: int = 400
    adam_betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 0.0
    clip_norm: float = 1.0
    label_smoothing: float = 0.1
    dropout: float = 0.1
    sampling: str = "uniform"  # HAT's rule; "sandwich" = largest + smallest + one random per update
    distill: bool = True  # sandwich: the smallest and the random one learn the largest's output distribution
    max_minutes: float = 90.0
    max_steps: int = 1_000_000
    checkpoint_minutes: float = 5.0
    snapshot_every: int = 0  # steps; each writes OUT_DIR/snapshots/step-N.pt (an fp16 export) for averaging; 0: none
    validate_every: int = 250
    valid_sentences: int = 300
    mixture: dict[str, float] = field(default_factory=dict)  # weight per train split (default 1), see batching
    bf16: bool | str = "auto"  # "auto": where the device computes bf16 natively (hardware.native_bf16)
    tokenizer: str | None = None  # SentencePiece model; default DATA_DIR/spm.model
    export: str | None = None  # fp16 export written at every checkpoint and at the end (spm.model beside it)
    rewarm_steps: int = 100  # continuing from the export: learning rate ramps up again over this many steps
    init_from: str | None = None  # start from a saved supernet's weights (fresh optimizer)
    arch: ArchConfig | dict | None = None  # train only this SubTransformer: fine-tuning a searched one (HAT Table 5)

    def __post_init__(self) -> None:
        if self.sampling not in ("uniform", "sandwich"):
            raise ConfigError(f"sampling={self.sampling!r}: use 'uniform' or 'sandwich'")
        if self.max_tokens < 64 or self.lr <= 0 or self.warmup_steps < 1:
            raise ConfigError("max_tokens must be >= 64, lr > 0 and warmup_steps >= 1")
        if not isinstance(self.snapshot_every, int) or self.snapshot_every < 0:
            raise ConfigError(f"snapshot_every={self.snapshot_every!r}: use a whole number of steps >= 0 (0: none)")
        if self.bf16 not in (True, False, "auto"):
            raise ConfigError(f"bf16={self.bf16!r}: use true, false or auto")
        bad = {k: w for k, w in self.mixture.items() if not isinstance(w, int | float) or w < 0}
        if bad:
            raise ConfigError(f"mixture weights must be numbers >= 0: {bad}")
        object.__setattr__(self, "mixture", {k: float(w) for k, w in self.mixture.items()})
        if isinstance(self.arch, dict):  # a malformed arch fails here, not mid-run
            object.__setattr__(self, "arch", ArchConfig.from_dict(self.arch))
        if not isinstance(self.space, SearchSpace):
            object.__setattr__(self, "space", _load_space(self.space))
        if self.arch is not None:
            self.space.validate(self.arch)
        object.__setattr__(self, "adam_betas", tuple(self.adam_betas))

    @classmethod
    def from_yaml(cls, text: str) -> "TrainConfig":
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"training config is not valid YAML: {exc}") from exc
        if isinstance(raw, dict) and "upsample" in raw and "mixture" not in raw:
            raw["mixture"] = raw.pop("upsample")  # the integer repeats of earlier configs are mixture weights
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - names)
        if unknown:
            raise ConfigError(f"unknown training config key(s) {unknown}; known: {sorted(names)}")
        try:
            return cls(**raw)
        except TypeError as exc:
            raise ConfigError(f"training config: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d.update(adam_betas=list(self.adam_betas), mixture=dict(self.mixture), space=self.space.to_dict())
        d["arch"] = None if self.arch is None else self.arch.to_dict()
        return d


def _load_space(space: str | dict) -> SearchSpace:
    if isinstance(space, dict):  # as `to_dict` stores it in a checkpoint
        return SearchSpace.from_dict(space)
    path = Path(space)
    if not path.is_file():
        raise ConfigError(f"space: {path} does not exist")
    return SearchSpace.from_yaml(path.read_text())


def lr_at(step: int, cfg: TrainConfig, rewarm_from: int | None = None) -> float:
    """Linear warm-up to `lr`, then inverse square root decay (Vaswani et al.); after a restart without optimizer
    state at step `rewarm_from`, a linear ramp over `rewarm_steps` on top (Adam's moments start from zero)."""
    step = max(step, 1)
    lr = cfg.lr * min(step / cfg.warmup_steps, math.sqrt(cfg.warmup_steps / step))
    if rewarm_from is not None:
        lr *= min(1.0, (step - rewarm_from) / cfg.rewarm_steps)
    return lr


def archs_for_step(space: SearchSpace, cfg: TrainConfig, step: int) -> list[ArchConfig]:
    if cfg.arch is not None:
        return [cfg.arch]
    sampled = space.sample(random.Random(cfg.seed * 1_000_003 + step))
    if cfg.sampling == "sandwich":
        return [space.largest(), space.smallest(), sampled]
    return [sampled]
