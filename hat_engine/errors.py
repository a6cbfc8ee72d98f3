"""Typed errors raised by the engine. Each message names the bad value and how to fix it."""

import math


class HatError(Exception):
    """Base class of every error the engine raises on purpose."""


class DataError(HatError):
    """A corpus source or output is missing, corrupt or unusable."""


class InvalidArchError(HatError, ValueError):
    """An architecture does not fit the search space."""


class ConfigError(HatError, ValueError):
    """A YAML or dataclass configuration is malformed (unknown key, wrong type)."""


class CheckpointError(HatError):
    """A checkpoint file is missing, corrupt, or was built from another configuration."""


class HardwareError(HatError, ValueError):
    """A hardware profile was asked for with an unknown backend or a bad thread count."""


class CatalogError(HatError):
    """A catalog is missing, malformed, or refers to files that are missing or altered."""


class InfeasibleBudgetError(HatError, ValueError):
    """No (or too few) SubTransformers of the space are predicted to fit the latency budget."""


class LatencyError(HatError, ValueError):
    """A latency figure, budget or prediction is not a positive finite number of milliseconds, or is missing."""


class UnusablePredictorError(HatError):
    """A latency predictor ranks held-out architectures too badly to steer a search."""


def check_latencies(values: list[float], what: str) -> None:
    """LatencyError unless `values` is a non-empty list of positive, finite milliseconds."""
    if not values:
        raise LatencyError(f"{what}: no latencies given")
    bad = [v for v in values if not _positive_finite(v)]
    if bad:
        raise LatencyError(f"{what}: {len(bad)} latencies are not positive finite milliseconds, e.g. {bad[0]!r}")


def _positive_finite(value: object) -> bool:
    try:
        return math.isfinite(value) and value > 0
    except TypeError:  # None, a string
        return False
