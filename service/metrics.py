"""The service's Prometheus metrics (CONTRACT §4), beside BentoML's own on `/metrics`.

BentoML runs each worker with PROMETHEUS_MULTIPROC_DIR set and serves `/metrics` from a MultiProcessCollector,
so plain `prometheus_client` metrics created inside a worker are summed over workers. `prometheus_client` is
imported when the metrics are first created (in the worker), never at module import, so it always sees that
directory. The info gauge uses `livemax`: a series shows 1 while any live worker serves that model.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class Metrics:
    latency: Any  # Histogram hat_translation_latency_seconds {model, hardware_profile}
    violations: Any  # Counter hat_sla_violations_total {model}
    tokens: Any  # Counter hat_generated_tokens_total {model}
    selected: Any  # Gauge hat_selected_model_info {model, hardware_profile, sla_ms}
    refused: Any  # Counter hat_refused_artifacts_total {model}
    switches: Any  # Counter hat_model_switches_total {from_model, to_model, direction}
    requests: Any  # Counter hat_translate_requests_total {status}
    batch_texts: Any  # Histogram hat_batch_texts (texts per adaptive batch)
    api_requests: Any  # Counter hat_api_requests_total {key_id, outcome}, with keys or limits on

    def select(self, model: str, hardware_profile: str, sla_ms: float | None, previous: str | None = None) -> None:
        """Mark `model` as the one serving default requests (and `previous`, if any, as no longer)."""
        sla = "none" if sla_ms is None else f"{sla_ms:g}"
        if previous is not None:
            self.selected.labels(model=previous, hardware_profile=hardware_profile, sla_ms=sla).set(0)
        self.selected.labels(model=model, hardware_profile=hardware_profile, sla_ms=sla).set(1)
        self.violations.labels(model=model).inc(0)  # the series exists from the start


@functools.cache
def metrics() -> Metrics:
    """The process's metrics, created once (a second registration would be an error)."""
    from prometheus_client import Counter, Gauge, Histogram

    return Metrics(
        latency=Histogram("hat_translation_latency_seconds", "Translation request latency (queueing included)",
                          ["model", "hardware_profile"], buckets=LATENCY_BUCKETS),
        violations=Counter("hat_sla_violations", "Requests over the SLA (normalised to the reference workload), "
                           "plus one at startup when no entry meets the SLA", ["model"]),
        tokens=Counter("hat_generated_tokens", "Target tokens generated", ["model"]),
        selected=Gauge("hat_selected_model_info", "The entry serving default requests (1)",
                       ["model", "hardware_profile", "sla_ms"], multiprocess_mode="livemax"),
        refused=Counter("hat_refused_artifacts", "Catalog entries refused (missing or altered artifacts)", ["model"]),
        switches=Counter("hat_model_switches", "SLA guard switches", ["from_model", "to_model", "direction"]),
        requests=Counter("hat_translate_requests", "Translate requests by HTTP status", ["status"]),
        batch_texts=Histogram("hat_batch_texts", "Texts per adaptive batch", buckets=(1, 2, 4, 8, 16, 32, 64, 128)),
        api_requests=Counter("hat_api_requests", "Requests checked for a key or a limit, by key id (never the key; "
                             "'none' without one, 'unknown' for a wrong one, 'anonymous' with keys off) and outcome "
                             "(ok, forbidden, limited, refused)", ["key_id", "outcome"]),
    )  # fmt: skip


@dataclass
class MetricsListener:
    """What the engine and the service report, turned into this worker's metrics: the engine's `Listener`
    callbacks (refused artifacts, SLA guard switches) and each served request."""

    metrics: Metrics
    hardware_profile: str
    sla_ms: float | None

    def started(self, selected: str, sla_violation: bool) -> None:
        self.metrics.select(selected, self.hardware_profile, self.sla_ms)
        if sla_violation:
            self.metrics.violations.labels(model=selected).inc()

    def refused(self, entry_id: str, reason: str) -> None:
        self.metrics.refused.labels(model=entry_id).inc()

    def switched(self, switch: Any) -> None:
        m = self.metrics
        m.switches.labels(from_model=switch.from_id, to_model=switch.to_id, direction=switch.direction).inc()
        m.select(switch.to_id, self.hardware_profile, self.sla_ms, previous=switch.from_id)

    def served(self, model: str, latency_ms: float, tokens: int, batch_texts: int, violation: bool) -> None:
        m = self.metrics
        m.latency.labels(model=model, hardware_profile=self.hardware_profile).observe(latency_ms / 1000.0)
        m.tokens.labels(model=model).inc(tokens)
        m.batch_texts.observe(batch_texts)
        if violation:
            m.violations.labels(model=model).inc()
