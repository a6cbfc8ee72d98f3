"""The serving engine: startup selection, per-request routing and the SLA guard over one catalog.

Startup (`ServingEngine.start`): load and validate the catalog, verify the tokenizer, on a host kind the catalog
never saw time the candidate thread counts (`thread_choices`) and keep the fastest, pick the catalog profile
for this host (exact match, else the nearest one plus a bounded calibration per artifact format, which
`calibrate_always` runs on an exact match too), verify every
candidate's artifact (a refused one is logged, reported to the listener and skipped), choose the highest-BLEU
entry whose p95 meets the SLA (the fastest, flagged as a violation, when none does), load it and warm it up.
Requests are then routed to the guard's active entry, or to the best entry meeting a per-request budget (loaded
lazily; see `TranslatorPool`). Nothing here reads the environment: the service passes every setting in.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from hat_engine.catalog.schema import Catalog, CatalogEntry, load_catalog, verify_file
from hat_engine.data.tokenizer import Tokenizer
from hat_engine.errors import CatalogError
from hat_engine.hardware import HardwareProfile
from hat_engine.latency.timing import measure_interleaved, measure_samples
from hat_engine.model.translate import Translation, translate_texts
from hat_engine.runtime.runners import load_runner
from hat_engine.serving.guard import GuardConfig, Observation, SlaGuard, Switch
from hat_engine.serving.heap import release_free_memory
from hat_engine.serving.pool import TranslatorPool, artifact_format
from hat_engine.serving.selection import (
    CALIBRATION_BUDGET_S,
    Calibration,
    Option,
    calibrate,
    guard_ladder,
    options_on_host,
    pick,
    profile_for_host,
)

log = logging.getLogger(__name__)

TRIM_AFTER_TOKENS = 128  # target tokens of one translate call after which the heap is trimmed (~0.1 ms)
WARMUP_TEXTS = ["The house is small.", "We will meet tomorrow morning at the station, if the weather is good."]


@dataclass
class Listener:
    """Callbacks the service turns into metrics; the engine itself knows no Prometheus."""

    refused: Callable[[str, str], None] = lambda entry_id, reason: None
    switched: Callable[[Switch], None] = lambda switch: None


@dataclass(frozen=True)
class ServingSettings:
    catalog_dir: Path
    cache_dir: Path
    backend: str = "onnxruntime"
    sla_ms: float | None = None
    max_loaded: int = 3
    calibration_budget_s: float = CALIBRATION_BUDGET_S
    guard: GuardConfig | None = field(default_factory=GuardConfig)  # None: no SLA guard
    thread_choices: tuple[int, ...] = ()  # 2+ counts: time them at startup and serve with the fastest
    calibrate_always: bool = False  # calibrate on an exact profile match too (a VM whose speed drifts)


@dataclass
class Plan:
    """What startup decided, for logs and `GET /models`."""

    host_profile: str
    catalog_profile: str
    sla_ms: float | None
    options: list[Option]  # verified candidates on this host, fastest first
    selected: Option
    sla_violation: bool
    refused: dict[str, str]
    calibration: Calibration | None
    startup_seconds: float = 0.0
    thread_p50_ms: dict[int, float] | None = None  # the reference workload's p50 at each count timed at startup


class ServingEngine:
    """One catalog served on one host. `start()` does the heavy work; the rest is cheap and thread-safe."""

    def __init__(self, settings: ServingSettings, host: HardwareProfile, listener: Listener | None = None):
        self.settings, self.host, self.listener = settings, host, listener or Listener()
        self.catalog: Catalog = load_catalog(settings.catalog_dir)
        verify_file(settings.catalog_dir, self.catalog.tokenizer, "tokenizer")
        self.tokenizer = Tokenizer(Path(settings.catalog_dir) / self.catalog.tokenizer.path)
        self.pool = TranslatorPool(settings.catalog_dir, self.catalog, settings.cache_dir, settings.backend,
                                   host.threads, settings.max_loaded)  # fmt: skip
        self.plan: Plan | None = None
        self.guard: SlaGuard | None = None
        self._lock = threading.Lock()

    @property
    def beam(self) -> int:
        return self.catalog.reference_workload.beam

    def start(self) -> Plan:
        t0 = time.monotonic()
        servable = lambda e: artifact_format(e, self.settings.backend) is not None  # noqa: E731
        thread_p50 = self._choose_threads(servable) if len(self.settings.thread_choices) > 1 else None
        profile = profile_for_host(self.catalog, self.host.profile_id, servable)
        entries = [e for e in self.catalog.entries_for(profile) if servable(e)]
        if profile != self.host.profile_id:
            log.warning("the catalog has no entries for this host (%s); calibrating from %s",
                        self.host.profile_id, profile)  # fmt: skip
        refused: dict[str, str] = {}
        outcomes = self.pool.verify_all(entries)  # a refused artifact is logged, reported and skipped
        for entry in entries:
            if isinstance(outcomes[entry.id], CatalogError):
                self._refuse(entry.id, str(outcomes[entry.id]), refused)
        verified = [e for e in entries if e.id not in refused]
        calibration = None
        if verified and (profile != self.host.profile_id or self.settings.calibrate_always):
            if profile == self.host.profile_id:
                log.info("calibrating the catalog's own profile %s on this host (calibrate_always)", profile)
            fmt = lambda e: artifact_format(e, self.settings.backend) or ""  # noqa: E731
            time_entry = lambda e: self._time_entry(e, outcomes[e.id])  # noqa: E731  the folder verify_all checked
            calibration = calibrate(verified, profile, time_entry, fmt, self.settings.calibration_budget_s)
        options = options_on_host(verified, calibration)
        selected, violation = pick(options, self.settings.sla_ms)
        while True:  # loading can still fail (e.g. a damaged cache whose source was altered since)
            try:
                self._warm(self.pool.load(self.catalog.entry(selected.entry_id)))
                break
            except CatalogError as exc:
                self._refuse(selected.entry_id, str(exc), refused)
                options = [o for o in options if o.entry_id != selected.entry_id]
                selected, violation = pick(options, self.settings.sla_ms)
        self.pool.pin(selected.entry_id)
        if violation:
            log.warning("no entry meets the SLA of %.1f ms on this host; serving the fastest, %s (p95 %.1f ms)",
                        self.settings.sla_ms, selected.entry_id, selected.p95_ms)  # fmt: skip
        if self.settings.guard is not None:
            ladder = guard_ladder(options, selected, self.settings.guard.min_step)
            ref_tokens = self.catalog.reference_workload.target_tokens
            self.guard = SlaGuard(self.settings.sla_ms, ladder, ref_tokens, self.settings.guard)
        release_free_memory()  # what timing thread counts and calibrating left behind
        self.plan = Plan(self.host.profile_id, profile, self.settings.sla_ms, options, selected, violation, refused,
                         calibration, time.monotonic() - t0, thread_p50)  # fmt: skip
        log.info("serving %s (p95 %.1f ms here, BLEU %.2f) on %s, SLA %s, in %.1fs", selected.entry_id,
                 selected.p95_ms, selected.bleu, self.host.profile_id, self.settings.sla_ms,
                 self.plan.startup_seconds)  # fmt: skip
        return self.plan

    def _refuse(self, entry_id: str, reason: str, refused: dict[str, str]) -> None:
        refused[entry_id] = reason
        log.error("refused catalog entry %s: %s", entry_id, reason)
        self.listener.refused(entry_id, reason)

    def _choose_threads(self, servable: Callable[[CatalogEntry], bool]) -> dict[int, float] | None:
        """The intra-op thread count by measurement, for a host kind the catalog never saw (more threads is not
        always faster on a small VM): the nearest profile's fastest servable entry, timed at each count in
        interleaved rounds; the lowest p50 wins and becomes this host's profile. None when it cannot be timed."""
        profile = profile_for_host(self.catalog, self.host.profile_id, servable)
        entry = min((e for e in self.catalog.entries_for(profile) if servable(e)), key=lambda e: e.p95)
        try:
            folder = self.pool.verify(entry)
        except CatalogError as exc:
            log.warning("thread choice: %s is refused (%s); keeping %d threads", entry.id, exc, self.host.threads)
            return None
        fmt = artifact_format(entry, self.settings.backend)
        loaders = {t: (lambda t=t: load_runner(folder, fmt, t)) for t in self.settings.thread_choices}
        found = measure_interleaved(loaders, self.catalog.reference_workload, rounds=3, runs=3, warmup=1)
        p50 = {t: round(stats.p50, 3) for t, stats in found.items()}
        chosen = min(p50, key=p50.__getitem__)
        log.info("thread choice: p50 %s ms on %s; serving with %d", p50, entry.id, chosen)
        self.host = replace(self.host, threads=chosen)
        self.pool.threads = chosen
        return p50

    def _time_entry(self, entry: CatalogEntry, folder: Path) -> list[float]:
        """One calibration round of `entry`: milliseconds of 5 reference-workload decodes after one warm-up, on a
        session loaded for the round from `folder` (already verified) and dropped after it, as the catalog's own
        rounds load theirs (`measure_interleaved`). Not through the pool: its LRU would evict and re-verify (hash)
        every entry each round, and keep calibration's models loaded."""
        model = load_runner(folder, artifact_format(entry, self.settings.backend), self.pool.threads)
        return measure_samples(model, self.catalog.reference_workload, warmup=1, runs=5)

    def _warm(self, model) -> None:
        for _ in range(2):
            translate_texts(model, self.tokenizer, WARMUP_TEXTS, self.beam)

    # --- per request ---------------------------------------------------------------------------------------

    @property
    def active_id(self) -> str:
        """The entry default requests go to: the guard's rung, else the startup choice."""
        assert self.plan is not None, "start() first"
        return self.guard.active.entry_id if self.guard else self.plan.selected.entry_id

    def route(self, budget_ms: float | None = None) -> str:
        """The entry for one request: the active one, or the best entry whose p95 here meets `budget_ms`
        (the fastest when none does)."""
        if budget_ms is None:
            return self.active_id
        with self._lock:
            options = [o for o in self.plan.options if o.entry_id not in self.plan.refused]
        return pick(options, budget_ms)[0].entry_id

    def translate(self, entry_id: str, texts: list[str], alternatives: int = 0) -> tuple[str, list[Translation]]:
        """Translate with `entry_id` (each text with up to `alternatives` other translations); an entry refused
        on lazy load is dropped and the request re-routed to the active entry. Returns the entry actually used."""
        try:
            model = self.pool.load(self.catalog.entry(entry_id))
        except CatalogError as exc:
            with self._lock:
                self._refuse(entry_id, str(exc), self.plan.refused)
                self.plan.options = [o for o in self.plan.options if o.entry_id != entry_id]
            if entry_id == self.active_id:
                raise
            entry_id = self.active_id
            model = self.pool.load(self.catalog.entry(entry_id))
        translations = translate_texts(model, self.tokenizer, texts, self.beam, alternatives)
        if sum(t.tokens for t in translations) >= TRIM_AFTER_TOKENS:
            release_free_memory()  # a large batch's KV caches would otherwise stay resident in the heap
        return entry_id, translations

    def observe(self, entry_id: str, latency_ms: float, tokens: int) -> Observation | None:
        """Feed one served request to the SLA guard; a switch is logged here and reported to the listener."""
        if self.guard is None:
            return None
        with self._lock:
            observation = self.guard.observe(entry_id, latency_ms, tokens)
        if observation.switch is not None:
            self.listener.switched(observation.switch)
        return observation

    def describe(self) -> dict:
        """The state `GET /models` shows."""
        plan = self.plan
        entries = {e.id: e for e in self.catalog.entries}
        options = {o.entry_id: o for o in plan.options}
        rows = []
        for e in self.catalog.entries_for(plan.catalog_profile):
            row = {"id": e.id, "params": e.params, "bleu": e.bleu, "chrf": e.chrf, "catalog_latency_ms": e.latency_ms,
                   "latency_budget_ms": e.latency_budget_ms, "status": "servable"}  # fmt: skip
            if e.id in plan.refused:
                row.update(status="refused", reason=plan.refused[e.id])
            elif e.id in options:
                row["host_latency_ms"] = {"p50": round(options[e.id].p50_ms, 3), "p95": round(options[e.id].p95_ms, 3)}
            else:
                row["status"] = "no artifact for this backend"
            rows.append(row)
        guard = self.guard
        return {
            "hardware_profile": plan.host_profile, "catalog_profile": plan.catalog_profile,
            "exact_profile_match": plan.host_profile == plan.catalog_profile,
            "backend": self.settings.backend, "threads": self.host.threads, "thread_p50_ms": plan.thread_p50_ms,
            "sla_ms": plan.sla_ms, "sla_violation": plan.sla_violation,
            "selected": {**plan.selected.to_dict(), "arch": entries[plan.selected.entry_id].arch.to_dict()},
            "active": self.active_id, "loaded": self.pool.loaded_ids(),
            "calibration": plan.calibration.to_dict() if plan.calibration else None,
            "sla_guard": None if guard is None else {
                "ladder": [o.entry_id for o in guard.ladder], "switches": [s.__dict__ for s in guard.switches],
                "window_p95_ms": guard.window_p95(self.active_id)},
            "entries": rows, "startup_seconds": round(plan.startup_seconds, 2),
        }  # fmt: skip
