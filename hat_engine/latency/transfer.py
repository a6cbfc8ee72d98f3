"""Mapping latencies from one host (or predictor) onto another from a few measurements. Torch-free: the serving
engine calibrates with it."""

import math
from collections.abc import Hashable, Sequence

from hat_engine.errors import ConfigError, check_latencies


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def fit_power_law_by_group(
    base_ms: Sequence[float], here_ms: Sequence[float], groups: Sequence[Hashable]
) -> tuple[dict[Hashable, float], float]:
    """({group: scale}, exponent) of `here = scale[group] * base ** exponent`, least squares on logs: one
    exponent (how latency's growth with model size transfers) shared by every group, one scale per group (an
    int8 model and an fp32 one move by different factors from one host to another). The exponent is fitted from
    the spread within groups, and only from at least two points more than there are groups; otherwise (a slope
    from so few noisy points is mostly noise), or when the fitted slope is implausible, it is 1, so that each
    scale is its group's geometric-mean ratio. The map never inverts the order within a group."""
    if not base_ms or not len(base_ms) == len(here_ms) == len(groups):
        raise ConfigError("a latency map needs at least one (base, measured, group) triple, aligned")
    check_latencies(list(base_ms), "latency map (base)")
    check_latencies(list(here_ms), "latency map (measured)")
    members: dict[Hashable, list[tuple[float, float]]] = {}
    for b, t, g in zip(base_ms, here_ms, groups, strict=True):
        members.setdefault(g, []).append((math.log(b), math.log(t)))
    means = {g: (_mean([b for b, _ in pts]), _mean([t for _, t in pts])) for g, pts in members.items()}
    var = sum((b - means[g][0]) ** 2 for g, pts in members.items() for b, _ in pts)
    cov = sum((b - means[g][0]) * (t - means[g][1]) for g, pts in members.items() for b, t in pts)
    slope = cov / var if var > 0 else 1.0
    exponent = slope if len(base_ms) >= len(members) + 2 and 0.2 < slope < 5 else 1.0
    return {g: math.exp(mt - exponent * mb) for g, (mb, mt) in means.items()}, exponent


def fit_power_law(base_ms: Sequence[float], here_ms: Sequence[float]) -> tuple[float, float]:
    """(scale, exponent) of `here = scale * base ** exponent`: `fit_power_law_by_group` with one group, the one
    map of latencies from one host (or predictor) to another. Exponent 1 from fewer than 3 points."""
    scales, exponent = fit_power_law_by_group(base_ms, here_ms, [0] * len(base_ms))
    return scales[0], exponent
