"""Latency predictor (HAT §3.3): architecture features -> measured milliseconds, one per hardware profile.

Three models on the same features, each fitted on *log* latency, so that a prediction is always a positive number
of milliseconds (latency is positive and spans ~10x across a space): HAT's MLP, ridge regression, and the median.
`fit_and_pick` fits them on the training rows and keeps the one that does best on the held-out rows (an MLP fitted
to a few noisy rows can do worse than a line); `require_usable` refuses a predictor whose held-out Kendall tau is
below a floor, for it would rank a search's candidates little better than at random.

Two feature sets: HAT's ten averaged features, and a richer per-layer encoding (each layer slot's FFN width and
head counts, zero where the layer is absent). The feature normalisation lives in the checkpoint with the weights.
`adapt` maps a trained predictor onto unseen hardware from a handful of measurements (a power law
`ms = scale * base_ms ** exponent`, fitted on logs), after HELP (NeurIPS'21) in spirit: the shape of the latency
landscape transfers, its scale doesn't.
"""

import dataclasses
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from hat_engine.config import ArchConfig, SearchSpace
from hat_engine.errors import CheckpointError, ConfigError, LatencyError, UnusablePredictorError, check_latencies
from hat_engine.latency.transfer import fit_power_law

PREDICTOR_FORMAT = "hat-latency-predictor/2"
LINEAR_TARGET_FORMAT = "hat-latency-predictor/1"  # fitted on ms, not log ms; still read (older catalogs ship it)
FEATURE_SETS = ("hat", "per_layer")
MODELS = ("mlp", "ridge", "median")
MIN_KENDALL_TAU = 0.5  # below this a predictor's ranking of held-out archs is too poor to steer a search
MIN_TEST_ARCHS = 5
RIDGE_LAMBDAS = tuple(10.0**k for k in range(-3, 4))


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
    """`layers` linear layers with ReLUs between; `layers=1` is a linear model (ridge, median)."""

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
    model: str = "mlp"  # one of MODELS
    log_target: bool = True  # the network predicts log ms (format 1 predicted ms)
    scale: float = 1.0  # few-shot adaptation: ms = scale * base_ms ** exponent + offset
    exponent: float = 1.0
    offset: float = 0.0  # format 1's linear adaptation only
    extra: dict = field(default_factory=dict)  # provenance: the profile's fingerprint, held-out metrics

    def _raw(self, archs: list[ArchConfig]) -> torch.Tensor:
        """Base milliseconds, before adaptation."""
        x = torch.tensor([features(a, self.space, self.feature_set) for a in archs], dtype=torch.float32)
        with torch.no_grad():
            y = self.mlp((x - self.x_mean) / self.x_std).double() * self.y_std + self.y_mean
        return y.exp() if self.log_target else y

    def predict(self, archs: list[ArchConfig]) -> list[float]:
        """Milliseconds per arch; LatencyError if any prediction is not positive and finite (only a format-1
        predictor, fitted on linear ms, can extrapolate below zero)."""
        if not archs:
            return []
        out = (self.scale * self._raw(archs) ** self.exponent + self.offset).tolist()
        for arch, ms in zip(archs, out, strict=True):
            if not (math.isfinite(ms) and ms > 0):
                raise LatencyError(
                    f"latency predictor of {self.profile_id or 'an unnamed profile'} predicted {ms!r} ms for "
                    f"{arch.arch_id()}; refit it with `hat latency fit` (fits log latency, always positive)"
                )
        return out

    def predict_one(self, arch: ArchConfig) -> float:
        return self.predict([arch])[0]

    @property
    def profile_id(self) -> str:
        return str(self.extra.get("profile_id") or self.extra.get("target_profile") or "")

    def save(self, path: Path, extra: dict | None = None) -> None:
        extra = {**self.extra, **(extra or {})}
        payload = {
            "format": PREDICTOR_FORMAT, "space": self.space.to_dict(), "feature_set": self.feature_set,
            "model": self.model, "hidden": self.mlp.net[0].out_features, "layers": len(self.mlp.net) // 2 + 1,
            "state_dict": self.mlp.state_dict(), "x_mean": self.x_mean, "x_std": self.x_std,
            "y_mean": self.y_mean, "y_std": self.y_std, "scale": self.scale, "exponent": self.exponent,
            "offset": self.offset, "extra": extra,
        }  # fmt: skip
        torch.save(payload, path)

    @classmethod
    def load(cls, path: Path) -> "LatencyPredictor":
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch.load raises many kinds on a damaged file
            raise CheckpointError(f"cannot read latency predictor {path}: {exc}") from exc
        formats = (PREDICTOR_FORMAT, LINEAR_TARGET_FORMAT)
        if not isinstance(payload, dict) or payload.get("format") not in formats:
            raise CheckpointError(f"{path} is not a latency predictor ({PREDICTOR_FORMAT})")
        space = SearchSpace.from_dict(payload["space"])
        n = len(features(space.largest(), space, payload["feature_set"]))
        mlp = LatencyMLP(n, payload["hidden"], payload["layers"])
        mlp.load_state_dict(payload["state_dict"])
        return cls(
            space, payload["feature_set"], mlp.eval(), payload["x_mean"], payload["x_std"], payload["y_mean"],
            payload["y_std"], payload.get("model", "mlp"), payload["format"] == PREDICTOR_FORMAT, payload["scale"],
            payload.get("exponent", 1.0), payload["offset"], dict(payload.get("extra") or {}),
        )  # fmt: skip


def _ridge(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Weights of ridge regression on centred x, y, the penalty chosen by exact leave-one-out error."""
    x64, y64 = x.double(), y.double()
    eye = torch.eye(x64.size(1), dtype=torch.float64)
    best = None
    for lam in RIDGE_LAMBDAS:
        inverse = torch.linalg.inv(x64.T @ x64 + lam * eye)
        hat = x64 @ inverse @ x64.T
        loo = (y64 - hat @ y64) / (1 - hat.diagonal()).clamp_min(1e-9)
        err = float((loo**2).mean())
        if best is None or err < best[0]:
            best = (err, inverse @ x64.T @ y64, lam)
    return best[1].float(), best[2]


def fit(
    space: SearchSpace, archs: list[ArchConfig], latency_ms: list[float], feature_set: str = "hat",
    model: str = "mlp", hidden: int = 400, layers: int = 3, epochs: int = 3000, lr: float = 1e-3, seed: int = 0,
) -> LatencyPredictor:  # fmt: skip
    """Fit `model` (MODELS) on (arch, measured ms) pairs, on standardised features and standardised log ms.
    The MLP trains full-batch with Adam; ridge is solved in closed form; the median ignores the features."""
    if len(archs) != len(latency_ms) or len(archs) < 2:
        raise ConfigError(f"need >= 2 aligned (arch, latency) pairs, got {len(archs)} and {len(latency_ms)}")
    if model not in MODELS:
        raise ConfigError(f"latency model {model!r}: use one of {MODELS}")
    check_latencies(latency_ms, "latency predictor fit")
    torch.manual_seed(seed)
    x = torch.tensor([features(a, space, feature_set) for a in archs], dtype=torch.float32)
    y = torch.tensor(latency_ms, dtype=torch.float64).log().float()
    x_mean, x_std = x.mean(0), x.std(0).clamp_min(1e-6)
    y_mean, y_std = float(y.mean()), float(y.std().clamp_min(1e-6))
    xn, yn = (x - x_mean) / x_std, (y - y_mean) / y_std
    if model == "mlp":
        net = LatencyMLP(x.size(1), hidden, layers)
        opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-5)
        for _ in range(epochs):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(net(xn), yn)
            loss.backward()
            opt.step()
    else:
        net = LatencyMLP(x.size(1), layers=1)
        with torch.no_grad():
            linear = net.net[0]
            linear.weight.zero_()
            linear.bias.fill_(float(yn.median()))
            if model == "ridge":
                weights, _ = _ridge(xn, yn)
                linear.weight.copy_(weights.unsqueeze(0))
                linear.bias.zero_()  # xn and yn are centred
    return LatencyPredictor(space, feature_set, net.eval(), x_mean, x_std, y_mean, y_std, model)


@dataclass(frozen=True)
class FitReport:
    """What `fit_and_pick` tried and kept: held-out metrics per candidate ('model/features')."""

    kept: str
    metrics: dict
    candidates: dict
    predicted: list  # the kept predictor's held-out predictions, in test order

    @property
    def note(self) -> str:
        """A line saying which won, and that a simple model beat the MLP when it did."""
        mlps = {k: v for k, v in self.candidates.items() if k.startswith("mlp/")}
        best_mlp = min(mlps, key=lambda k: mlps[k]["mape"]) if mlps else None
        if best_mlp is None or self.kept.startswith("mlp/"):
            return f"kept {self.kept} (lowest held-out MAPE)"
        return (f"the MLP did worse on the held-out rows ({best_mlp}: MAPE {mlps[best_mlp]['mape']:.2f} %) than "
                f"{self.kept} (MAPE {self.metrics['mape']:.2f} %): kept {self.kept}")  # fmt: skip


def fit_and_pick(
    space: SearchSpace, archs: list[ArchConfig], latency_ms: list[float], test: list[int],
    feature_sets: tuple[str, ...] = FEATURE_SETS, epochs: int = 3000, seed: int = 0,
) -> tuple[LatencyPredictor, FitReport]:  # fmt: skip
    """The MLP and ridge on every feature set, and the median, fitted on the rows not in `test`; the one with the
    lowest MAPE on the `test` rows is kept."""
    if len(test) < MIN_TEST_ARCHS:
        raise ConfigError(f"need >= {MIN_TEST_ARCHS} held-out architectures to judge a predictor, got {len(test)}")
    held = set(test)
    train = [i for i in range(len(archs)) if i not in held]
    if len(train) < 2:
        raise ConfigError(f"need >= 2 training architectures besides the {len(test)} held out, got {len(train)}")
    x_train, y_train = [archs[i] for i in train], [latency_ms[i] for i in train]
    x_test, y_test = [archs[i] for i in test], [latency_ms[i] for i in test]
    plan = [(m, fs) for fs in feature_sets for m in ("mlp", "ridge")] + [("median", feature_sets[0])]
    fitted = {}
    for model, fs in plan:
        predictor = fit(space, x_train, y_train, fs, model, epochs=epochs, seed=seed)
        predicted = predictor.predict(x_test)
        name = "median" if model == "median" else f"{model}/{fs}"
        fitted[name] = (predictor, predicted, metrics(predicted, y_test))
    kept = min(fitted, key=lambda k: (fitted[k][2]["mape"], -fitted[k][2]["kendall_tau"]))
    predictor, predicted, m = fitted[kept]
    return predictor, FitReport(kept, m, {k: v[2] for k, v in fitted.items()}, predicted)


def require_usable(predictor: LatencyPredictor, min_tau: float = MIN_KENDALL_TAU, name: str = "") -> None:
    """UnusablePredictorError unless the predictor's recorded held-out Kendall tau reaches `min_tau`."""
    e = predictor.extra
    tau, mape, n_test = e.get("kendall_tau"), e.get("mape"), e.get("n_test")
    where = f"latency predictor {name or '(unnamed)'} of {predictor.profile_id or 'an unnamed profile'}"
    if tau is None or mape is None:
        raise UnusablePredictorError(f"{where} records no held-out Kendall tau; refit it with `hat latency fit`")
    if not (math.isfinite(tau) and tau >= min_tau):
        raise UnusablePredictorError(
            f"{where} ranks held-out architectures too poorly to search with: Kendall tau {tau:.3f} < {min_tau:g} "
            f"(MAPE {mape:.1f} % on {n_test} held-out archs); measure more samples (--samples) or more runs per arch "
            "(--runs), on a quiet machine, and refit"
        )


def adapt(predictor: LatencyPredictor, archs: list[ArchConfig], latency_ms: list[float]) -> LatencyPredictor:
    """The same predictor mapped by `fit_power_law` to a few measurements on new hardware."""
    if len(archs) < 2 or len(archs) != len(latency_ms):
        raise ConfigError("few-shot adaptation needs at least 2 measured architectures, aligned with their ms")
    scale, exponent = fit_power_law(predictor._raw(archs).tolist(), latency_ms)
    return dataclasses.replace(predictor, scale=scale, exponent=exponent, offset=0.0, extra={})


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
    if len(predicted) != len(measured):
        raise LatencyError(f"metrics: {len(predicted)} predictions for {len(measured)} measurements")
    check_latencies(measured, "predictor metrics (measured)")
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
