"""What the service does on a host kind a catalog never saw, checked against that host's own build.

Serves `--catalog` (which has no profile of this host kind) as `hat serve` would with `--sla-ms`: the startup
thread choice over 1..`--max-threads` (the nearest profile's fastest entry, timed at each count), then, at each
thread count, the per-format calibration from the nearest profile. Each calibrated entry's placed p50 is set
against the p50 that `--build` (a `hat catalog build` folder of this host kind, made later or earlier) measured
for the same arch and format at the same thread count; the MAPE is over the entries both have. The engine that
chose the threads calibrated at the count it chose, so that calibration is the one reported for it.

    .venv/bin/python bench/unseen_host.py --catalog OLD_CATALOG --build runs/catalog-NEW [--sla-ms 60] [--repeats 3]
        [--json latency/calibration/ISA-unseen.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
from pathlib import Path

from hat_engine.catalog.build import recorded_entries
from hat_engine.catalog.report import is_int8
from hat_engine.hardware import detect
from hat_engine.serving.engine import ServingEngine, ServingSettings


def main() -> int:  # pragma: no cover - a benchmark, run by hand on a new host kind
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--catalog", type=Path, required=True, help="a catalog without this host kind's profiles")
    p.add_argument("--build", type=Path, required=True, help="this host kind's own `hat catalog build` folder")
    p.add_argument("--sla-ms", type=float, default=60.0)
    p.add_argument("--max-threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="service starts in a row (the VM drifts between them)")
    p.add_argument("--json", type=Path, help="also write the record here")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)

    _, built = recorded_entries(args.build)
    build_p50 = {(e.hardware_profile, e.arch.arch_id(), is_int8(e)): float(e.latency_ms["p50"]) for e in built}
    repeats = [_one_start(args, build_p50) for _ in range(args.repeats)]
    chosen = repeats[0]["thread_choice"]["chosen"]
    record = {
        "what": f"{args.catalog} (no profile of this host kind) served here, against {args.build}, this host "
        "kind's own build: the startup thread choice, and per thread count the per-format calibration's placed "
        "p50 against the build's p50 for the same arch and format; one record per service start",
        "host": repeats[0]["host_profile"].replace(f"-{chosen}t-", "-"),
        "date": datetime.date.today().isoformat(),
        "command": f"bench/unseen_host.py --catalog {args.catalog} --build {args.build} --sla-ms {args.sla_ms:g} "
        f"--repeats {args.repeats}",
        "mape_pct_per_repeat": {
            t: [r["calibration"][t]["mape_pct"] for r in repeats] for t in repeats[0]["calibration"]
        },
        "threads_chosen": [r["thread_choice"]["chosen"] for r in repeats],
        "repeats": repeats,
    }
    print(f"MAPE per repeat {record['mape_pct_per_repeat']}; threads chosen {record['threads_chosen']}")
    if args.json:
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0


def _one_start(args: argparse.Namespace, build_p50: dict[tuple, float]) -> dict:
    """One service start at `--max-threads` that chooses its threads, then one at each other count."""

    def serve(threads: int, choices: tuple[int, ...] = ()) -> ServingEngine:
        settings = ServingSettings(args.catalog, args.catalog / ".cache", sla_ms=args.sla_ms, guard=None,
                                   thread_choices=choices)  # fmt: skip
        engine = ServingEngine(settings, detect("onnxruntime", threads, probe_cuda=False))
        engine.start()
        return engine

    first = serve(args.max_threads, tuple(range(1, args.max_threads + 1)))
    chosen = first.host.threads
    found = {"host_profile": first.host.profile_id, "thread_choice": {"p50_ms": first.plan.thread_p50_ms,
             "chosen": chosen}, "calibration": {}}  # fmt: skip
    for threads in range(1, args.max_threads + 1):
        engine = first if threads == chosen else serve(threads)
        plan, c = engine.plan, engine.plan.calibration
        if c is None:
            raise SystemExit(f"{args.catalog} has this host's profile {plan.host_profile}: nothing was calibrated")
        rows = []
        for option in plan.options:
            entry = engine.catalog.entry(option.entry_id)
            key = (engine.host.profile_id, entry.arch.arch_id(), is_int8(entry))
            truth = build_p50.get(key)
            error = None if truth is None else round(100 * (option.p50_ms - truth) / truth, 1)
            rows.append({"entry": entry.id, "format": "int8" if key[2] else "fp32",
                         "catalog_p50_ms": float(entry.latency_ms["p50"]), "placed_p50_ms": round(option.p50_ms, 2),
                         "build_p50_ms": truth, "timed_by_calibration": entry.id in c.measured_p50_ms,
                         "error_pct": error})  # fmt: skip
        errors = [abs(r["error_pct"]) for r in rows if r["error_pct"] is not None]
        mape = round(sum(errors) / len(errors), 1) if errors else None
        found["calibration"][f"{threads}t"] = {
            "source_profile": c.source_profile, "exponent": round(c.exponent, 3),
            "scales": {k: round(v, 3) for k, v in c.scales.items()}, "tail_ratio": round(c.tail_ratio, 3),
            "entries_timed": len(c.measured_p50_ms), "rounds": c.rounds, "seconds": round(c.seconds, 1),
            "selected": plan.selected.entry_id, "against_build": rows,
            "mape_pct": mape,
        }  # fmt: skip
        print(
            f"{threads} thread(s): calibrated from {c.source_profile} in {c.seconds:.1f} s, exponent "
            f"{c.exponent:.3f}, scales {c.scales}; placed p50 against the build's: MAPE {mape} % over {len(errors)}"
        )
    print(f"thread choice: p50 {first.plan.thread_p50_ms} ms, serving with {chosen}")
    return found


if __name__ == "__main__":
    raise SystemExit(main())
