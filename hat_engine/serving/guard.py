"""SLA guard: keep live latency within the SLA by stepping along the catalog's latency/BLEU ladder.

Each served request reports its wall-clock latency and how many tokens it generated. Latency is normalised to
the reference workload (`ms * reference_tokens / max(tokens, min_tokens)`), so a long input does not look like a
slow model; the floor keeps very short outputs, whose fixed costs dominate, from looking slow per token. When the
sliding-window p95 of the active model stays above the SLA for `sustain_s`, the guard steps down to the next
faster rung; when the next slower rung would stay under `headroom * SLA` (its catalog latency ratio applied to the
live p95) for `recover_s`, it steps back up, never above the entry chosen at startup.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hat_engine.serving.selection import Option

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GuardConfig:
    window_s: float = 30.0  # sliding window of live samples
    max_samples: int = 512
    min_samples: int = 20  # no decision on fewer samples
    sustain_s: float = 5.0  # p95 above the SLA this long -> step down
    recover_s: float = 30.0  # projected p95 under headroom * SLA this long -> step up
    headroom: float = 0.8
    min_tokens: int = 8  # normalisation floor
    # Rungs at least this much faster than the one above (`selection.guard_ladder`). On the EPYC hosts the ratio
    # of two archs' latencies, measured twice apart in time, moved by 6 % on average and up to 16-17 %
    # (latency/retest/): a closer rung may be no faster at all, and each loaded rung costs a worker 11-15 MB
    # (int8) or ~51 MB (fp32), measured on the AVX-512 BF16 1-thread ladder.
    min_step: float = 0.15


@dataclass(frozen=True)
class Switch:
    from_id: str
    to_id: str
    direction: str  # "down" | "up"
    window_p95_ms: float  # normalised live p95 of the model switched from

    def describe(self) -> str:
        return f"{self.direction} {self.from_id} -> {self.to_id} (live p95 {self.window_p95_ms:.1f} ms, normalised)"


@dataclass(frozen=True)
class Observation:
    normalised_ms: float
    violation: bool  # this request's normalised latency exceeded the SLA
    switch: Switch | None = None


@dataclass
class _Window:
    samples: deque = field(default_factory=deque)  # (t, normalised ms)

    def add(self, t: float, value: float, cfg: GuardConfig) -> None:
        self.samples.append((t, value))
        while self.samples and (t - self.samples[0][0] > cfg.window_s or len(self.samples) > cfg.max_samples):
            self.samples.popleft()

    def p95(self, now: float, cfg: GuardConfig) -> float | None:
        values = sorted(v for t, v in self.samples if now - t <= cfg.window_s)
        if len(values) < cfg.min_samples:
            return None
        return values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]


class SlaGuard:
    """Steps the active entry along `ladder` (fastest first; the last rung is the startup choice)."""

    def __init__(
        self,
        sla_ms: float | None,
        ladder: Sequence[Option],
        reference_tokens: int,
        config: GuardConfig = GuardConfig(),
        clock: Callable[[], float] = time.monotonic,
    ):
        if not ladder:
            raise ValueError("the SLA guard needs at least one rung")
        self.sla_ms, self.ladder, self.config, self.clock = sla_ms, list(ladder), config, clock
        self.reference_tokens = reference_tokens
        self.level = len(self.ladder) - 1
        self.switches: list[Switch] = []
        self._windows: dict[str, _Window] = {}
        self._breach_since: float | None = None
        self._headroom_since: float | None = None

    @property
    def active(self) -> Option:
        return self.ladder[self.level]

    def normalise(self, latency_ms: float, tokens: int) -> float:
        return latency_ms * self.reference_tokens / max(tokens, self.config.min_tokens)

    def window_p95(self, entry_id: str) -> float | None:
        window = self._windows.get(entry_id)
        return window.p95(self.clock(), self.config) if window else None

    def observe(self, entry_id: str, latency_ms: float, tokens: int) -> Observation:
        """Record one request served by `entry_id`; returns whether it violated the SLA and any switch made."""
        now, value = self.clock(), self.normalise(latency_ms, tokens)
        self._windows.setdefault(entry_id, _Window()).add(now, value, self.config)
        violation = self.sla_ms is not None and value > self.sla_ms
        switch = self._decide(now) if self.sla_ms is not None and entry_id == self.active.entry_id else None
        return Observation(value, violation, switch)

    def _decide(self, now: float) -> Switch | None:
        cfg, current = self.config, self.active
        p95 = self._windows[current.entry_id].p95(now, cfg)
        if p95 is None:
            return None
        if p95 > self.sla_ms:
            self._headroom_since = None
            self._breach_since = self._breach_since if self._breach_since is not None else now
            if now - self._breach_since >= cfg.sustain_s and self.level > 0:
                return self._move(-1, p95)
            return None
        self._breach_since = None
        if self.level == len(self.ladder) - 1:
            return None
        upper = self.ladder[self.level + 1]
        projected = p95 * upper.p95_ms / max(current.p95_ms, 1e-9)
        if projected > cfg.headroom * self.sla_ms:
            self._headroom_since = None
            return None
        self._headroom_since = self._headroom_since if self._headroom_since is not None else now
        if now - self._headroom_since >= cfg.recover_s:
            return self._move(+1, p95)
        return None

    def _move(self, step: int, p95: float) -> Switch:
        before = self.active
        self.level += step
        after = self.active
        switch = Switch(before.entry_id, after.entry_id, "down" if step < 0 else "up", p95)
        self.switches.append(switch)
        self._breach_since = self._headroom_since = None
        self._windows.pop(after.entry_id, None)  # judge the new rung on fresh samples only
        log.warning("SLA guard (SLA %.1f ms): %s", self.sla_ms, switch.describe())
        return switch
