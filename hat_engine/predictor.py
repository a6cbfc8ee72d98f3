"""Latency predictor (HAT §3.3): an MLP from architecture features to measured latency, per hardware profile.

Two feature sets: HAT's ten averaged features, and a richer per-layer encoding (each layer slot's FFN width and
head counts, zero where the layer is absent). The feature normalisation lives in the checkpoint with the weights.
`adapt` maps a trained predictor onto unseen hardware from a handful of measurements (scale and offset, fitted by
least squares), after HELP (NeurIPS'21) in spirit: the shape of the latency landscape transfers, its scale doesn't.
"""

import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from hat_engine.config import ArchConfig, SearchSpace
from hat_engine.errors import CheckpointError, ConfigError

PREDICTOR_FORMAT = "hat-latency-predictor/1"
FEATURE_SETS = ("hat", "per_layer")


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def features(arch: ArchConfig, space: SearchSpace, feature_set: str) -> list[float]:
    """The feature vector of `arch` (raw, before normalisation)."""
    enc, dec = arch.encoder_layers, arch.decoder_layers
    if feature_set == "hat":
        return [
            arch.encoder_embed_dim, len(enc), _mean([g.ffn_dim for g in enc]), _mean([g.self_heads for g in enc]),
            arch.decoder_embed_dim, len(dec), _mean([g.ffn_dim for g in dec]), _mean([g.self_heads for g in dec]),
            _mean([g.cross_heads for g in dec]), _mean([g.cross_layers for g in dec]),
        ]  # fmt: skip
    if feature_set == "per_layer":
        out = [arch.encoder_embed_dim, len(enc), arch.decoder_embed_dim, len(dec)]
        for i in range(space.max_encoder_depth):
            g = enc[i] if i < len(enc) else None
            out += [g.ffn_dim, g.self_heads] if g else [0, 0]
        for i in range(space.max_decoder_depth):
            g = dec[i] if i < len(dec) else None
            out += [g.ffn_dim, g.self_heads, g.cross_heads, g.cross_layers] if g else [0, 0, 0, 0]
        return [float(v) for v in out]
    raise ConfigError(f"feature set {feature_set!r}: use one of {FEATURE_SETS}")


class LatencyMLP(nn.Module):
    def __init__(self, n_features: int, hidden: int = 400, layers: int = 3):
        super().__init__()
        blocks, width = [], n_features
        for _ in range(layers - 1):
            blocks += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.net = nn.Sequential(*blocks, nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


@dataclass
class LatencyPredictor:
    """Predicts milliseconds for architectures of `space` on one hardware profile."""

    space: SearchSpace
    feature_set: str
    mlp: LatencyMLP
    x_mean: torch.Tensor
    x_std: torch.Tensor
    y_mean: float
    y_std: float
    scale: float = 1.0  # few-shot adaptation: ms = scale * mlp_ms + offset
    offset: float = 0.0
    extra: dict = field(default_factory=dict)  # provenance: the profile's fingerprint, fit metrics

    def _raw(self, archs: list[ArchConfig]) -> torch.Tensor:
        x = torch.tensor([features(a, self.space, self.feature_set) for a in archs], dtype=torch.float32)
        with torch.no_grad():
            return self.mlp((x - self.x_mean) / self.x_std) * self.y_std + self.y_mean

    def predict(self, archs: list[ArchConfig]) -> list[float]:
        return (self._raw(archs) * self.scale + self.offset).tolist()

    def predict_one(self, arch: ArchConfig) -> float:
        return self.predict([arch])[0]

    def save(self, path: Path, extra: dict | None = None) -> None:
        extra = {**self.extra, **(extra or {})}
        payload = {
            "format": PREDICTOR_FORMAT, "space": self.space.to_dict(), "feature_set": self.feature_set,
            "hidden": self.mlp.net[0].out_features, "layers": len(self.mlp.net) // 2 + 1,
            "state_dict": self.mlp.state_dict(), "x_mean": self.x_mean, "x_std": self.x_std,
            "y_mean": self.y_mean, "y_std": self.y_std, "scale": self.scale, "offset": self.offset,
            "extra": extra,
        }  # fmt: skip
        torch.save(payload, path)

    @classmethod
    def load(cls, path: Path) -> "LatencyPredictor":
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch.load raises many kinds on a damaged file
            raise CheckpointError(f"cannot read latency predictor {path}: {exc}") from exc
        if not isinstance(payload, dict) or payload.get("format") != PREDICTOR_FORMAT:
            raise CheckpointError(f"{path} is not a latency predictor ({PREDICTOR_FORMAT})")
        space = SearchSpace.from_dict(payload["space"])
        n = len(features(space.largest(), space, payload["feature_set"]))
        mlp = LatencyMLP(n, payload["hidden"], payload["layers"])
        mlp.load_state_dict(payload["state_dict"])
        return cls(space, payload["feature_set"], mlp.eval(), payload["x_mean"], payload["x_std"],
                   payload["y_mean"], payload["y_std"], payload["scale"], payload["offset"],
                   dict(payload.get("extra") or {}))  # fmt: skip


def fit(
    space: SearchSpace, archs: list[ArchConfig], latency_ms: list[float], feature_set: str = "hat",
    hidden: int = 400, layers: int = 3, epochs: int = 3000, lr: float = 1e-3, seed: int = 0,
) -> LatencyPredictor:  # fmt: skip
    """Train an MLP on (arch, measured ms) pairs: full-batch Adam on standardised features and targets."""
    if len(archs) != len(latency_ms) or len(archs) < 2:
        raise ConfigError(f"need >= 2 aligned (arch, latency) pairs, got {len(archs)} and {len(latency_ms)}")
    torch.manual_seed(seed)
    x = torch.tensor([features(a, space, feature_set) for a in archs], dtype=torch.float32)
    y = torch.tensor(latency_ms, dtype=torch.float32)
    x_mean, x_std = x.mean(0), x.std(0).clamp_min(1e-6)
    y_mean, y_std = float(y.mean()), float(y.std().clamp_min(1e-6))
    mlp = LatencyMLP(x.size(1), hidden, layers)
    opt = torch.optim.Adam(mlp.parameters(), lr=lr, weight_decay=1e-5)
    xn, yn = (x - x_mean) / x_std, (y - y_mean) / y_std
    for _ in range(epochs):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(mlp(xn), yn)
        loss.backward()
        opt.step()
    return LatencyPredictor(space, feature_set, mlp.eval(), x_mean, x_std, y_mean, y_std)


def adapt(predictor: LatencyPredictor, archs: list[ArchConfig], latency_ms: list[float]) -> LatencyPredictor:
    """The same predictor with a scale and offset fitted (least squares) to a few measurements on new hardware."""
    if len(archs) < 2:
        raise ConfigError("few-shot adaptation needs at least 2 measured architectures")
    p = predictor._raw(archs).tolist()
    n, mp, my = len(p), _mean(p), _mean(latency_ms)
    var = sum((a - mp) ** 2 for a in p)
    scale = sum((a - mp) * (b - my) for a, b in zip(p, latency_ms, strict=True)) / var if var > 0 else 1.0
    scale = scale if scale > 0 else my / max(mp, 1e-9)  # latency grows with predicted latency; never invert
    offset = my - scale * mp if n > 2 else 0.0
    return LatencyPredictor(predictor.space, predictor.feature_set, predictor.mlp, predictor.x_mean,
                            predictor.x_std, predictor.y_mean, predictor.y_std, scale, offset)  # fmt: skip


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's tau-a between two equally long lists."""
    n, concordant, discordant = len(a), 0, 0
    for i in range(n):
        for j in range(i + 1, n):
            s = (a[i] - a[j]) * (b[i] - b[j])
            concordant += s > 0
            discordant += s < 0
    pairs = n * (n - 1) / 2
    return (concordant - discordant) / pairs if pairs else 0.0


def metrics(predicted: list[float], measured: list[float]) -> dict[str, float]:
    """MAPE (%), RMSE (ms) and Kendall's tau of predictions against measurements."""
    n = len(measured)
    mape = 100.0 * sum(abs(p - m) / m for p, m in zip(predicted, measured, strict=True)) / n
    rmse = math.sqrt(sum((p - m) ** 2 for p, m in zip(predicted, measured, strict=True)) / n)
    return {
        "mape": round(mape, 3),
        "rmse_ms": round(rmse, 3),
        "kendall_tau": round(kendall_tau(predicted, measured), 4),
    }


def split_indices(n: int, n_test: int, seed: int = 0) -> tuple[list[int], list[int]]:
    """A fixed, seeded train/test split of n samples."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return sorted(order[n_test:]), sorted(order[:n_test])
