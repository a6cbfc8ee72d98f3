"""Serving-time selection (HAT's deployment step): this host and a latency SLA -> the catalog entry to serve.

HAT (Wang et al., 2020) searches one SubTransformer per hardware target and latency budget; serving closes the
loop. With the catalog measured on this very profile, each entry's measured p95 on the reference workload is
its latency here. On a host the catalog never saw, a short calibration times a few entries of each artifact
format here, in interleaved rounds, and maps the catalog's latencies onto this host with
`latency.transfer.fit_power_law_by_group`, the map `predictor.adapt` fits with one group (the shape of the
latency landscape transfers, its scale does not, and differs between int8 and fp32).

Everything here is pure: measurements come in through a callable, time through a clock, so the unit tests run
on fake latencies in milliseconds.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from hat_engine.catalog.schema import Catalog, CatalogEntry
from hat_engine.errors import CatalogError
from hat_engine.hardware import ISA_TIERS, ProfileId
from hat_engine.latency.timing import stats
from hat_engine.latency.transfer import fit_power_law_by_group
from hat_engine.pareto import pareto_front

log = logging.getLogger(__name__)

CALIBRATION_BUDGET_S = 20.0
CALIBRATION_ENTRIES = 8  # entries timed at most
CALIBRATION_ROUNDS = 3  # interleaved rounds over them at most


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
    """What the calibration on an unseen host measured, and the map it fitted (`fit_power_law_by_group`, the
    entries' artifact formats as groups) from the catalog's p50 to the p50 here:
    here_ms = scales[format] * catalog_ms ** exponent.

    The map is fitted on medians, which a slow spell of a shared machine hardly moves (a p95 of 15 decodes is
    their second slowest). An entry's p95 here is its p50 here times the heavier of two tails: its own p95/p50 in
    the catalog, and this host's `tail_ratio`, the p95 over every calibration decode of its ms over its entry's
    p50 here (a hundred-odd decodes, where one entry has 15). Formats get their own scale because they move apart
    across hosts: int8 ran 2.5-2.8x faster than the catalog on an AMD host where fp32 ran 1.66x faster, and from
    1 thread to 2 on one Xeon catalog v3.1's int8 entries slowed 1.33-1.60x, its fp32 one 1.08x
    (`bench/calibration_accuracy.py`)."""

    source_profile: str
    measured_p50_ms: dict[str, float]  # entry id -> p50 here, over the samples of every round
    measured_p95_ms: dict[str, float]  # entry id -> p95 here, likewise (shown; too few samples to place by)
    catalog_p50_ms: dict[str, float]  # entry id -> p50 in the catalog (source profile), for the measured ones
    formats: dict[str, str]  # entry id -> its artifact format, for every entry calibrated (measured or not)
    scales: dict[str, float]  # format -> scale; a format with no entry measured gets the others' geometric mean
    exponent: float
    tail_ratio: float  # p95 over the measured entries' decodes of decode ms / the entry's p50 here
    rounds: int  # interleaved rounds over the measured entries
    seconds: float

    def apply(self, entry_id: str, catalog_ms: float) -> float:
        return self.scales[self.formats[entry_id]] * max(catalog_ms, 1e-3) ** self.exponent

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


def calibration_order(
    entries: Sequence[CatalogEntry], format_of: Callable[[CatalogEntry], str] = lambda e: ""
) -> list[CatalogEntry]:
    """Per format: fastest, slowest, then the middle ones outwards (the first two already span the range); the
    formats taken in turn, so that the first few measurements reach every format."""
    by_format: dict[str, list[CatalogEntry]] = {}
    for entry in sorted(entries, key=lambda e: e.p95):
        by_format.setdefault(format_of(entry), []).append(entry)
    orders = []
    for ordered in by_format.values():
        if len(ordered) > 2:
            middle = ordered[1:-1]
            mid = len(middle) // 2
            ordered = [ordered[0], ordered[-1], *sorted(middle, key=lambda e: abs(middle.index(e) - mid))]
        orders.append(ordered)
    return [order[i] for i in range(max(map(len, orders), default=0)) for order in orders if i < len(order)]


def calibrate(
    entries: Sequence[CatalogEntry],
    source_profile: str,
    time_entry: Callable[[CatalogEntry], list[float]],
    format_of: Callable[[CatalogEntry], str] = lambda e: "",
    budget_s: float = CALIBRATION_BUDGET_S,
    max_entries: int = CALIBRATION_ENTRIES,
    rounds: int = CALIBRATION_ROUNDS,
    clock: Callable[[], float] = time.monotonic,
) -> Calibration:
    """Time up to `max_entries` entries here (at least one; `time_entry` returns one round's samples in ms),
    within `budget_s` seconds, in up to `rounds` interleaved rounds whose samples are pooled, so that a slow
    spell of a shared machine lands on every entry rather than on one. In the first round an entry is skipped
    when the time the last one took, scaled by the catalog's latency ratio, would overrun the budget; a further
    round runs only when the first round's time still fits."""
    start = clock()
    samples: dict[str, list[float]] = {}
    cost_s: dict[str, float] = {}
    last: CatalogEntry | None = None
    for entry in calibration_order(entries, format_of)[:max_entries]:
        elapsed = clock() - start
        if last is not None:
            estimate = cost_s[last.id] * entry.p95 / max(last.p95, 1e-9)
            if elapsed + estimate > budget_s:
                log.info("calibration: skipping %s (would take ~%.1fs, %.1fs left)", entry.id, estimate,
                         budget_s - elapsed)  # fmt: skip
                continue
        t0 = clock()
        samples[entry.id] = list(time_entry(entry))
        cost_s[entry.id], last = clock() - t0, entry
    by_id = {e.id: e for e in entries}
    done = 1
    while done < rounds and clock() - start + sum(cost_s.values()) <= budget_s:
        for entry_id in samples:
            samples[entry_id] += time_entry(by_id[entry_id])
        done += 1
    found = {k: stats(v) for k, v in samples.items()}
    catalog_p50 = {k: float(by_id[k].latency_ms["p50"]) for k in found}
    formats = {e.id: format_of(e) for e in entries}
    scales, exponent = fit_power_law_by_group(list(catalog_p50.values()), [s.p50 for s in found.values()],
                                              [formats[k] for k in found])  # fmt: skip
    unmeasured = sorted(set(formats.values()) - set(scales))
    if unmeasured:
        fill = math.exp(statistics.fmean(math.log(v) for v in scales.values()))
        log.warning("calibration: no %s entry measured in %.0fs; its latencies are mapped with the measured "
                    "formats' mean scale", "/".join(unmeasured), budget_s)  # fmt: skip
        scales |= dict.fromkeys(unmeasured, fill)
    for k, s in found.items():
        log.info("calibration: %s (%s) p50 %.2f ms here (catalog %.2f ms on %s)", k, formats[k] or "-", s.p50,
                 catalog_p50[k], source_profile)  # fmt: skip
    tail = stats([ms / found[k].p50 for k, v in samples.items() for ms in v]).p95
    cal = Calibration(source_profile, {k: s.p50 for k, s in found.items()}, {k: s.p95 for k, s in found.items()},
                      catalog_p50, formats, scales, exponent, tail, done, clock() - start)  # fmt: skip
    log.info("calibration: here_ms = scale[format] * catalog_ms ^ %.3f, scales %s, p95/p50 here %.3f, from %d "
             "entries x %d rounds in %.1fs", exponent, {f or "-": round(v, 3) for f, v in scales.items()}, tail,
             len(found), done, cal.seconds)  # fmt: skip
    return cal


def options_on_host(entries: Sequence[CatalogEntry], calibration: Calibration | None) -> list[Option]:
    """Entries as this host sees them: the catalog's numbers on an exact profile match; otherwise each entry's
    p50 here (measured by the calibration, else mapped by it) and its p95 here, that p50 times the heavier of its
    p95/p50 in the catalog and the calibration's `tail_ratio`."""
    options = []
    for e in entries:
        if calibration is None:
            options.append(option_from_entry(e))
            continue
        catalog_p50 = float(e.latency_ms["p50"])
        p50 = calibration.measured_p50_ms.get(e.id)
        here = p50 is not None
        p50 = p50 if here else calibration.apply(e.id, catalog_p50)
        tail = max(e.p95 / max(catalog_p50, 1e-9), calibration.tail_ratio)
        options.append(Option(e.id, p50, p50 * tail, e.mean_bleu, e.params, here))
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
