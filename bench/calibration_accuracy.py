"""How well the serving calibration places a catalog's entries on a host it was not measured on.

The case it times is one this host can stage for real: a catalog profile measured at one thread count, served at
another (`HAT_THREADS`), where int8 and fp32 entries move by different factors. For each direction
(`--source PROFILE --threads N`), in each repeat, every entry of the profile is timed at N threads as the
service's calibration times one (a session loaded, 1 warm-up, 5 decodes of the reference workload), in
`--rounds` interleaved rounds in a shuffled order, each round's samples and seconds recorded. The calibrations
then run on those recordings (replayed: the k-th time a calibration times an entry, it gets the entry's k-th
round, and the clock advances by that round's recorded seconds), so that every method sees the same decodes and
the machine's drift between minutes (on these VMs 1.5x at times) lands on all of them alike:

- before: the calibration as it was until per-format calibration (`calibrate_before` below: 4 entries, fastest
  and slowest first, one round each, one power law through every format, fitted on p95);
- one map: `calibrate` as the service runs it (up to 8 entries, up to 3 rounds in 20 s, fitted on p50, the tail
  from every decode), with every format in one group;
- per format: the same, each artifact format with its own scale (what the service does).

Served at the profile's own thread count (`--source P --threads` its count), the methods are "catalog as is"
(the catalog's figures, what the service serves on an exact match: is this sitting the catalog's?) and per
format (`HAT_CALIBRATE=always`).

The truth is every round of every entry: p50 and p95 over `--rounds` x 5 decodes. Each method's error is
|placed - true| / true over the entries it did not time itself, against that truth ("all rounds": the fit's
error and the drift since the calibration's rounds) and against the entry's own first 3 rounds, the ones the
calibrations timed ("same rounds": the fit's error alone); and for SLAs spread over the true p95 range:
how often its pick breaks the SLA in truth, and the mean BLEU it gives up against the best entry that truly
meets it.

    .venv/bin/python bench/calibration_accuracy.py [--catalog catalog] [--source ID --threads N ...]
        [--repeats 3] [--rounds 6] [--json latency/calibration/PROFILE-KIND.json]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import time
from pathlib import Path

from hat_engine.catalog.schema import CatalogEntry, load_catalog
from hat_engine.latency.timing import measure_samples, stats
from hat_engine.latency.transfer import fit_power_law
from hat_engine.runtime.runners import load_runner
from hat_engine.serving.pool import TranslatorPool, artifact_format
from hat_engine.serving.selection import (
    CALIBRATION_ROUNDS,
    Option,
    calibrate,
    calibration_order,
    options_on_host,
    pick,
)

METHODS = ("before", "one map", "per format")
SAME_PROFILE_METHODS = ("catalog as is", "per format")  # served at the profile's own thread count


def methods_for(catalog, source: str, threads: int) -> tuple[str, ...]:
    return SAME_PROFILE_METHODS if int(catalog.profile(source).fingerprint["threads"]) == threads else METHODS


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--catalog", type=Path, default=Path("catalog"))
    ap.add_argument("--source", action="append", help="catalog profile to calibrate from (repeatable)")
    ap.add_argument("--threads", action="append", type=int, help="threads to serve with, one per --source")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--rounds",
        type=int,
        default=6,
        help=f"interleaved rounds recorded per repeat ({CALIBRATION_ROUNDS}+: what a calibration replays)",
    )
    ap.add_argument("--slas", type=int, default=12, help="SLAs spread over the true p95 range")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    catalog = load_catalog(args.catalog)
    profiles = [p.id for p in catalog.hardware_profiles if len(catalog.entries_for(p.id)) >= 3]
    if not args.source:  # every profile with 3+ entries, served at the other thread count of the two
        args.source = profiles
        args.threads = [1 if int(catalog.profile(p).fingerprint["threads"]) > 1 else 2 for p in profiles]
    if len(args.threads or ()) != len(args.source) or min(args.threads or [1]) < 1:
        raise SystemExit("calibration_accuracy.py: give one --threads (1 or more) per --source")
    unknown = sorted(set(args.source) - set(profiles))
    if unknown or args.repeats < 1 or args.rounds < CALIBRATION_ROUNDS:
        raise SystemExit(f"calibration_accuracy.py: profiles with 3+ entries are {profiles} (got {unknown}); "
                         f"--repeats must be at least 1 and --rounds at least {CALIBRATION_ROUNDS}")  # fmt: skip
    results = []
    rng = random.Random(0)
    for source, threads in zip(args.source, args.threads, strict=True):
        for repeat in range(args.repeats):
            found = run_once(catalog, args.catalog, source, threads, args.rounds, args.slas, rng)
            results.append({"source": source, "threads": threads, "repeat": repeat + 1, **found})
            print_repeat(results[-1])
    print_summary(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


def calibrate_before(entries: list[CatalogEntry], time_entry) -> tuple[dict[str, Option], set[str], dict]:
    """The calibration the service ran until per-format calibration replaced it, kept here to compare against."""
    chosen = calibration_order(entries)[:4]
    measured = {e.id: stats(time_entry(e)).p95 for e in chosen}
    scale, exponent = fit_power_law([e.p95 for e in chosen], list(measured.values()))
    placed = {}
    for e in entries:
        p95 = measured.get(e.id, scale * e.p95**exponent)
        placed[e.id] = Option(e.id, float(e.latency_ms["p50"]) * p95 / e.p95, p95, e.mean_bleu, e.params, True)
    return placed, set(measured), {"scales": {"all": round(scale, 4)}, "exponent": round(exponent, 4), "rounds": 1}


def record(catalog, catalog_dir: Path, entries, threads: int, rounds: int, rng: random.Random) -> dict:
    """entry id -> [(samples ms, seconds)] per round: interleaved, shuffled, each round on a fresh session."""
    pool = TranslatorPool(catalog_dir, catalog, catalog_dir / ".cache", "onnxruntime", threads, max_loaded=1)
    folders = pool.verify_all(entries)
    recorded = {e.id: [] for e in entries}
    for _ in range(rounds):
        for e in rng.sample(entries, len(entries)):
            t0 = time.monotonic()
            model = load_runner(folders[e.id], artifact_format(e, "onnxruntime"), threads)
            ms = measure_samples(model, catalog.reference_workload, warmup=1, runs=5)
            recorded[e.id].append((ms, time.monotonic() - t0))
            del model
    return recorded


class Replay:
    """`time_entry` and clock for `calibrate` over recorded rounds: the k-th call for an entry gets its k-th
    round, and the clock advances by the seconds that round took."""

    def __init__(self, recorded: dict):
        self.recorded, self.calls, self.t = recorded, {}, 0.0

    def __call__(self) -> float:
        return self.t

    def time_entry(self, entry) -> list[float]:
        k = self.calls[entry.id] = self.calls.get(entry.id, -1) + 1
        ms, seconds = self.recorded[entry.id][k]
        self.t += seconds
        return ms


def run_once(catalog, catalog_dir: Path, source: str, threads: int, rounds: int, n_slas: int,
             rng: random.Random) -> dict:  # fmt: skip
    entries = catalog.entries_for(source)
    fmt = {e.id: artifact_format(e, "onnxruntime") for e in entries}
    recorded = record(catalog, catalog_dir, entries, threads, rounds, rng)
    truth = {k: stats([ms for samples, _ in rs for ms in samples]) for k, rs in recorded.items()}
    window = {k: stats([ms for samples, _ in rs[:CALIBRATION_ROUNDS] for ms in samples]) for k, rs in recorded.items()}
    placed, info = {}, {}
    for name in methods_for(catalog, source, threads):
        replay = Replay(recorded)
        if name == "catalog as is":  # what the service serves on an exact profile match
            options, measured, info[name] = {o.entry_id: o for o in options_on_host(entries, None)}, set(), {}
        elif name == "before":
            options, measured, info[name] = calibrate_before(entries, replay.time_entry)
        else:
            format_of = (lambda e: "") if name == "one map" else (lambda e: fmt[e.id])
            cal = calibrate(entries, source, replay.time_entry, format_of, clock=replay)
            options, measured = {o.entry_id: o for o in options_on_host(entries, cal)}, set(cal.measured_p50_ms)
            info[name] = {"scales": {f or "all": round(v, 4) for f, v in cal.scales.items()},
                          "exponent": round(cal.exponent, 4), "tail_ratio": round(cal.tail_ratio, 4),
                          "rounds": cal.rounds, "seconds": round(cal.seconds, 2)}  # fmt: skip
        placed[name] = options
        info[name] |= {"measured": sorted(measured)}
    true_p95 = {k: s.p95 for k, s in truth.items()}
    lo, hi = min(true_p95.values()), max(true_p95.values())
    slas = [lo * (hi / lo) ** (i / max(n_slas - 1, 1)) for i in range(n_slas)]
    bleu = {e.id: e.mean_bleu for e in entries}
    methods = {}
    for name, options in placed.items():
        unmeasured = [k for k in options if k not in info[name]["measured"]]

        def error(stat: str, truth=truth, options=options, unmeasured=unmeasured) -> list[float]:
            return [abs(getattr(options[k], f"{stat}_ms") - getattr(truth[k], stat)) / getattr(truth[k], stat)
                    for k in unmeasured]  # fmt: skip

        broken, given_up = 0, []
        for sla in slas:
            chosen = pick(list(options.values()), sla)[0].entry_id
            feasible = [bleu[k] for k in true_p95 if true_p95[k] <= sla]
            if true_p95[chosen] > sla:
                broken += 1
            elif feasible:
                given_up.append(max(feasible) - bleu[chosen])
        methods[name] = {
            **info[name], "placed_p50_ms": {k: round(o.p50_ms, 2) for k, o in options.items()},
            "placed_p95_ms": {k: round(o.p95_ms, 2) for k, o in options.items()},
            "mape_p50": statistics.fmean(error("p50")) if unmeasured else math.nan,
            "mape_p95": statistics.fmean(error("p95")) if unmeasured else math.nan,
            "max_error_p95": max(error("p95"), default=math.nan),
            "mape_p50_same_rounds": statistics.fmean(error("p50", window)) if unmeasured else math.nan,
            "mape_p95_same_rounds": statistics.fmean(error("p95", window)) if unmeasured else math.nan,
            "slas_broken": broken, "slas": len(slas),
            "bleu_given_up": statistics.fmean(given_up) if given_up else 0.0,
        }  # fmt: skip
    return {"rounds": rounds, "formats": fmt, "catalog_p50_ms": {e.id: e.latency_ms["p50"] for e in entries},
            "catalog_p95_ms": {e.id: e.p95 for e in entries},
            "true_p50_ms": {k: round(s.p50, 2) for k, s in truth.items()},
            "true_p95_ms": {k: round(s.p95, 2) for k, s in truth.items()}, "methods": methods,
            "recorded_ms": {k: [[round(ms, 3) for ms in samples] for samples, _ in rs] for k, rs in recorded.items()},
            }  # fmt: skip


def print_repeat(r: dict) -> None:
    print(f"\n## {r['source']} served at {r['threads']} thread(s), repeat {r['repeat']} (p50 / p95, ms)")
    names = list(r["methods"])
    print("| entry | format | catalog | true here | " + " | ".join(f"{n}" for n in names) + " |")
    print("|---|---|---:|---:|" + "---:|" * len(names))
    for k in sorted(r["true_p95_ms"], key=r["catalog_p95_ms"].get):
        cells = []
        for n in names:
            m = r["methods"][n]
            mark = " *" if k in m["measured"] else ""
            cells.append(f"{m['placed_p50_ms'][k]:.1f} / {m['placed_p95_ms'][k]:.1f}{mark}")
        print(f"| {k.split('@')[1]} | {r['formats'][k]} | {r['catalog_p50_ms'][k]:.1f} / {r['catalog_p95_ms'][k]:.1f} "
              f"| {r['true_p50_ms'][k]:.1f} / {r['true_p95_ms'][k]:.1f} | " + " | ".join(cells) + " |")  # fmt: skip
    print("(* measured by that calibration)")
    for n in names:
        m = r["methods"][n]
        print(f"{n}: {len(m['measured'])} measured x {m.get('rounds', 0)} rounds, scales {m.get('scales')}, "
              f"exponent {m.get('exponent')}; unmeasured MAPE p50 {m['mape_p50']:.1%}, p95 {m['mape_p95']:.1%} (max "
              f"{m['max_error_p95']:.1%}), same rounds p50 {m['mape_p50_same_rounds']:.1%}, p95 "
              f"{m['mape_p95_same_rounds']:.1%}; SLAs broken {m['slas_broken']}/{m['slas']}; BLEU given up "
              f"{m['bleu_given_up']:.2f}")  # fmt: skip


def print_summary(results: list[dict]) -> None:
    print("\n## Summary (each cell: the repeats' values; SLAs broken: over every repeat)")
    print(
        "| source -> threads | method | MAPE p50, same rounds | MAPE p95, same rounds | MAPE p50, all rounds "
        "| MAPE p95, all rounds | SLAs broken | BLEU given up |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for source, threads in dict.fromkeys((r["source"], r["threads"]) for r in results):
        rows = [r for r in results if (r["source"], r["threads"]) == (source, threads)]
        for n in rows[0]["methods"]:
            ms = [r["methods"][n] for r in rows]

            def cells(key: str, fmt: str, ms=ms) -> str:
                values = [m[key] for m in ms]
                return ", ".join(map(fmt.format, values)) + f" (mean {fmt.format(statistics.fmean(values))})"

            broken = f"{sum(m['slas_broken'] for m in ms)}/{sum(m['slas'] for m in ms)}"
            keys = ("mape_p50_same_rounds", "mape_p95_same_rounds", "mape_p50", "mape_p95")
            mapes = " | ".join(cells(k, "{:.1%}") for k in keys)
            given_up = cells("bleu_given_up", "{:.2f}")
            print(f"| {source} -> {threads}t | {n} | {mapes} | {broken} | {given_up} |")


if __name__ == "__main__":
    raise SystemExit(main())
