"""Typed errors raised by the engine. Each message names the bad value and how to fix it."""


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
