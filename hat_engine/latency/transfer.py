"""Mapping latencies from one host (or predictor) onto another from a few measurements. Torch-free: the serving
engine calibrates with it."""

import math
from collections.abc import Sequence

from hat_engine.errors import ConfigError, check_latencies


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def fit_power_law(base_ms: Sequence[float], here_ms: Sequence[float]) -> tuple[float, float]:
    """(scale, exponent) of `here = scale * base ** exponent`, least squares on logs: the one map of latencies
    from one host (or predictor) to another. Exponent 1 from fewer than 3 points (a slope from two noisy points
    is mostly noise) or when the fitted slope is implausible; the map never inverts the order."""
    if not base_ms or len(base_ms) != len(here_ms):
        raise ConfigError("a latency map needs at least one (base, measured) pair, aligned")
    check_latencies(list(base_ms), "latency map (base)")
    check_latencies(list(here_ms), "latency map (measured)")
    base, target = [math.log(v) for v in base_ms], [math.log(v) for v in here_ms]
    mb, mt = _mean(base), _mean(target)
    var = sum((b - mb) ** 2 for b in base)
    slope = sum((b - mb) * (t - mt) for b, t in zip(base, target, strict=True)) / var if var > 0 else 1.0
    exponent = slope if len(base) >= 3 and 0.2 < slope < 5 else 1.0
    return math.exp(mt - exponent * mb), exponent
