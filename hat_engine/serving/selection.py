"""Serving-time selection (HAT's deployment step): this host and a latency SLA -> the catalog entry to serve.

HAT (Wang et al., 2020) searches one SubTransformer per hardware target and latency budget; serving closes the
loop. With the catalog measured on this very profile, each entry's measured p95 on the reference workload is
its latency here. On a host the catalog never saw, a short calibration measures a few entries here and maps the
catalog's latencies onto this host with `latency.transfer.fit_power_law`, the map `predictor.adapt` fits too
(the shape of the latency landscape transfers, its scale does not).

Everything here is pure: measurements come in through a callable, time through a clock, so the unit tests run
on fake latencies in milliseconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from hat_engine.catalog.schema import Catalog, CatalogEntry
from hat_engine.errors import CatalogError
from hat_engine.hardware import ISA_TIERS, ProfileId
from hat_engine.latency.transfer import fit_power_law
from hat_engine.pareto import pareto_front

log = logging.getLogger(__name__)

CALIBRATION_BUDGET_S = 20.0


@dataclass(frozen=True)
class Option:
    """A catalog entry as this host sees it: latency on the reference workload here, and its quality."""

    entry_id: str
    p50_ms: float
    p95_ms: float
    bleu: float  # mean over the catalog's test sets
    params: int
    measured_here: bool  # True: the catalog's own measurement on this profile, or calibration's measurement

    def to_dict(self) -> dict:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Calibration:
    """What the calibration on an unseen host measured, and the map it fitted (`fit_power_law`):
    here_ms = scale * catalog_ms ** exponent."""

    source_profile: str
    measured_p95_ms: dict[str, float]  # entry id -> p95 measured on this host
    catalog_p95_ms: dict[str, float]  # entry id -> p95 in the catalog (source profile)
    scale: float
    exponent: float
    seconds: float

    def apply(self, catalog_ms: float) -> float:
        return self.scale * max(catalog_ms, 1e-3) ** self.exponent

    def to_dict(self) -> dict:
        return asdict(self)


def option_from_entry(entry: CatalogEntry) -> Option:
    """The catalog's own measurement: valid as is on the profile it was measured on."""
    return Option(entry.id, float(entry.latency_ms["p50"]), entry.p95, entry.mean_bleu, entry.params, True)


def pick(options: Sequence[Option], budget_ms: float | None) -> tuple[Option, bool]:
    """The highest-BLEU option whose p95 meets `budget_ms` (ties: the faster); no budget -> the best overall.
    When none meets it: the fastest, and True (a violation) as the second value."""
    if not options:
        raise CatalogError("no servable catalog entry is left (every entry was refused or none fits this backend)")

    def best(opts: Sequence[Option]) -> Option:
        return max(opts, key=lambda o: (o.bleu, -o.p95_ms))

    if budget_ms is None:
        return best(options), False
    fitting = [o for o in options if o.p95_ms <= budget_ms]
    if fitting:
        return best(fitting), False
    return min(options, key=lambda o: (o.p95_ms, -o.bleu)), True


def pareto_ladder(options: Sequence[Option]) -> list[Option]:
    """The non-dominated options (no other is both faster and at least as good), fastest first: the rungs the
    SLA guard steps along."""
    return pareto_front(options, cost=lambda o: o.p95_ms, quality=lambda o: o.bleu)


def guard_ladder(options: Sequence[Option], selected: Option, min_step: float) -> list[Option]:
    """The SLA guard's rungs, fastest first, ending at `selected`: the Pareto ladder below it, thinned so that
    each rung is at least `min_step` (a fraction) faster than the rung above it. Walking down from `selected`,
    the slowest (best) entry that far below the last kept rung is kept; the fastest entry is always the bottom
    rung (the guard's last resort), in place of a kept rung closer to it than `min_step`. A rung that close buys
    the guard a step its measurement noise can undo, and costs a loaded model's memory per worker."""
    if not 0.0 <= min_step < 1.0:
        raise ValueError(f"min_step {min_step}: use a fraction in [0, 1)")
    below = [o for o in pareto_ladder(options) if o.p95_ms <= selected.p95_ms and o.entry_id != selected.entry_id]
    kept = [selected]
    for option in reversed(below):  # slowest first
        if option.p95_ms <= kept[-1].p95_ms * (1.0 - min_step):
            kept.append(option)
    if below and kept[-1] is not below[0]:
        kept[-1:] = [below[0]] if len(kept) > 1 else [kept[-1], below[0]]
    return kept[::-1]


def nearest_profile(profile_ids: Sequence[str], host_profile_id: str) -> str:
    """The catalog profile most like this host: same backend first, then device, arch, ISA tier, thread count,
    then the ISA tier nearest in `hardware.ISA_TIERS` (an AMX host's nearest is AVX-512 BF16, not AVX2)."""
    if not profile_ids:
        raise CatalogError("the catalog has no hardware profile with entries")
    host = ProfileId.parse(host_profile_id)
    tiers = [tier for tier, _ in ISA_TIERS] + ["base"]

    def tier_distance(isa: str) -> int:
        return abs(tiers.index(isa) - tiers.index(host.isa)) if isa in tiers and host.isa in tiers else len(tiers)

    def score(pid: str) -> tuple:
        p = ProfileId.parse(pid)
        same = [getattr(p, k) == getattr(host, k) for k in ("backend", "device", "arch", "isa")]
        return (*same, -abs(p.threads - host.threads), -tier_distance(p.isa), pid)

    return max(profile_ids, key=score)


def calibration_order(entries: Sequence[CatalogEntry]) -> list[CatalogEntry]:
    """Fastest, slowest, then the middle ones outwards: the first two already span the range."""
    ordered = sorted(entries, key=lambda e: e.p95)
    if len(ordered) <= 2:
        return ordered
    first, last, middle = ordered[0], ordered[-1], ordered[1:-1]
    mid = len(middle) // 2
    rest = sorted(middle, key=lambda e: abs(middle.index(e) - mid))
    return [first, last, *rest]


def calibrate(
    entries: Sequence[CatalogEntry],
    source_profile: str,
    measure_p95: Callable[[CatalogEntry], float],
    budget_s: float = CALIBRATION_BUDGET_S,
    max_entries: int = 4,
    clock: Callable[[], float] = time.monotonic,
) -> Calibration:
    """Measure up to `max_entries` entries here (at least one), within `budget_s` seconds: an entry is skipped
    when the time the last one took, scaled by the catalog's latency ratio, would overrun the budget."""
    start = clock()
    measured: dict[str, float] = {}
    last: tuple[CatalogEntry, float] | None = None
    for entry in calibration_order(entries)[:max_entries]:
        elapsed = clock() - start
        if last is not None:
            estimate = last[1] * entry.p95 / max(last[0].p95, 1e-9)
            if elapsed + estimate > budget_s:
                log.info("calibration: skipping %s (would take ~%.1fs, %.1fs left)", entry.id, estimate,
                         budget_s - elapsed)  # fmt: skip
                continue
        t0 = clock()
        measured[entry.id] = float(measure_p95(entry))
        last = (entry, clock() - t0)
        log.info("calibration: %s p95 %.2f ms here (catalog %.2f ms on %s)", entry.id, measured[entry.id],
                 entry.p95, source_profile)  # fmt: skip
    by_id = {e.id: e for e in entries}
    catalog_ms = {k: by_id[k].p95 for k in measured}
    scale, exponent = fit_power_law(list(catalog_ms.values()), list(measured.values()))
    cal = Calibration(source_profile, measured, catalog_ms, scale, exponent, clock() - start)
    log.info("calibration: here_ms = %.3f * catalog_ms ^ %.3f, from %d entries in %.1fs", scale, exponent,
             len(measured), cal.seconds)  # fmt: skip
    return cal


def options_on_host(entries: Sequence[CatalogEntry], calibration: Calibration | None) -> list[Option]:
    """Entries as this host sees them: the catalog's numbers on an exact profile match; otherwise mapped by the
    calibration, with the entries calibration measured keeping their measured p95 (p50 scaled alike)."""
    options = []
    for e in entries:
        if calibration is None:
            options.append(option_from_entry(e))
            continue
        p95 = calibration.measured_p95_ms.get(e.id)
        here = p95 is not None
        p95 = p95 if here else calibration.apply(e.p95)
        p50 = float(e.latency_ms["p50"]) * p95 / max(e.p95, 1e-9)
        options.append(Option(e.id, p50, p95, e.mean_bleu, e.params, here))
    return sorted(options, key=lambda o: o.p95_ms)


def profile_for_host(catalog: Catalog, host_profile_id: str, servable: Callable[[CatalogEntry], bool]) -> str:
    """The catalog profile to serve from: this host's own when the catalog has servable entries for it, else the
    nearest profile that has some."""
    if any(servable(e) for e in catalog.entries_for(host_profile_id)):
        return host_profile_id
    with_entries = sorted({e.hardware_profile for e in catalog.entries if servable(e)})
    if not with_entries:
        raise CatalogError("the catalog has no entry with an artifact this backend can serve")
    return nearest_profile(with_entries, host_profile_id)


def best_thread_count(catalog: Catalog, host_profile_id: str, max_threads: int, sla_ms: float | None) -> int | None:
    """The intra-op thread count (1..max_threads) whose catalog profile *of this very host* serves best under the
    SLA: meeting it first, then BLEU, then p95. More threads is not always faster on a small VM, so when the
    catalog measured this host kind at several thread counts its measurements decide. With no such profile: None
    (the serving engine then measures the counts itself at startup: `ServingSettings.thread_choices`)."""
    host = ProfileId.parse(host_profile_id)
    best: tuple | None = None
    for profile in {e.hardware_profile for e in catalog.entries}:
        p = ProfileId.parse(profile)
        threads = p.threads
        if not 1 <= threads <= max_threads or not p.same_host_kind(host):
            continue
        option, violated = pick([option_from_entry(e) for e in catalog.entries_for(profile)], sla_ms)
        score = (not violated, option.bleu, -option.p95_ms, -threads)
        if best is None or score > best[0]:
            best = (score, threads)
    return best[1] if best else None
