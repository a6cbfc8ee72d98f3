"""Why `hat latency measure --entry` can read a catalog entry faster than the catalog does.

A catalog build times its entries in interleaved rounds (`measure_interleaved`): each round loads every model
afresh, in a shuffled order, and times 3 decodes after 2 warm-ups, so each model runs right after other models
ran. `hat latency measure --entry` keeps one session and decodes back to back. For each profile's fastest and
slowest entry this times, round by round in a shuffled order, each after two other entries of the profile
decoded once (the caches as the build leaves them):

- fresh: a session loaded for the round, 2 warm-ups, 3 timed decodes (the build's protocol);
- kept: the same on a session kept across rounds (is it the session's first runs that cost?);
- kept, hot: 3 more decodes right after "kept" (do the other models' runs cost?);
- alone: the kept session, 3 warm-ups and `--alone-runs` decodes back to back (`hat latency measure --entry`),
  before and after the rounds.

Each figure is the median over rounds of the round's p50, in milliseconds, on the catalog's reference workload.

    .venv/bin/python bench/catalog_timing.py [--catalog catalog] [--profile ID ...] [--rounds 12] [--json F]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from pathlib import Path

from hat_engine.catalog.materialize import materialize
from hat_engine.catalog.schema import CatalogEntry, load_catalog
from hat_engine.latency.timing import measure, reference_source, run_workload
from hat_engine.runtime.runners import load_runner


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--catalog", type=Path, default=Path("catalog"))
    ap.add_argument("--profile", action="append", help="profile ids (default: every profile with 3+ entries)")
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--alone-runs", type=int, default=40)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if args.rounds < 1 or args.alone_runs < 1:
        raise SystemExit("catalog_timing.py: --rounds and --alone-runs must be at least 1")

    catalog = load_catalog(args.catalog)
    known = [p.id for p in catalog.hardware_profiles if len(catalog.entries_for(p.id)) >= 3]
    unknown = sorted(set(args.profile or ()) - set(known))
    if unknown:
        raise SystemExit(f"catalog_timing.py: no profile with 3+ entries named {', '.join(unknown)}; have {known}")
    results = [time_profile(catalog, args.catalog, pid, args.rounds, args.alone_runs) for pid in args.profile or known]
    print("| entry | catalog p50 | fresh | kept | kept, hot | alone (before, after) | fresh/kept | kept/alone |")
    print("|---|---:|---:|---:|---:|---|---:|---:|")
    for r in (r for profile in results for r in profile):
        print(f"| {r['entry']} | {r['catalog_p50_ms']:.1f} | {r['fresh_ms']:.1f} | {r['kept_ms']:.1f} | "
              f"{r['kept_hot_ms']:.1f} | {r['alone_ms'][0]:.1f}, {r['alone_ms'][1]:.1f} | {r['fresh_over_kept']:.3f} "
              f"| {r['kept_over_alone']:.3f} |")  # fmt: skip
    if args.json:
        found = [r for profile in results for r in profile]
        args.json.write_text(json.dumps({"rounds": args.rounds, "alone_runs": args.alone_runs, "entries": found}))
    return 0


def time_profile(catalog, catalog_dir: Path, profile_id: str, rounds: int, alone_runs: int) -> list[dict]:
    entries = sorted(catalog.entries_for(profile_id), key=lambda e: e.latency_ms["p50"])
    threads = int(catalog.profile(profile_id).fingerprint["threads"])
    workload = catalog.reference_workload
    cache = catalog_dir / ".cache"
    folders = {e.id: materialize(catalog_dir, catalog, e, e.artifacts[0].format, cache) for e in entries}

    def load(e: CatalogEntry):
        return load_runner(folders[e.id], e.artifacts[0].format, threads)

    timed, others = [entries[0], entries[-1]], entries[1:-1]
    kept = {e.id: load(e) for e in timed}
    alone = {e.id: [measure(kept[e.id], workload, 3, alone_runs).p50] for e in timed}
    found = {(e.id, how): [] for e in timed for how in ("fresh", "kept", "hot")}
    rng = random.Random(0)
    for r in range(rounds):
        for e in rng.sample(timed, len(timed)):
            for how in rng.sample(["fresh", "kept"], 2):
                for other in rng.sample(others, min(2, len(others))):
                    model = load(other)
                    run_workload(model, reference_source(workload, model.model_config), workload)
                    del model
                model = load(e) if how == "fresh" else kept[e.id]
                found[(e.id, how)].append(measure(model, workload, 2, 3).p50)
                if how == "kept":
                    found[(e.id, "hot")].append(measure(model, workload, 0, 3).p50)
                del model
        print(f"{profile_id}: round {r + 1}/{rounds}", flush=True)
    for e in timed:
        alone[e.id].append(measure(kept[e.id], workload, 3, alone_runs).p50)
    out = []
    for e in timed:
        fresh, kept_ms, hot = (statistics.median(found[(e.id, how)]) for how in ("fresh", "kept", "hot"))
        out.append({"entry": e.id, "catalog_p50_ms": e.latency_ms["p50"], "fresh_ms": round(fresh, 3),
                    "kept_ms": round(kept_ms, 3), "kept_hot_ms": round(hot, 3),
                    "alone_ms": [round(x, 3) for x in alone[e.id]], "fresh_over_kept": round(fresh / kept_ms, 3),
                    "kept_over_alone": round(kept_ms / statistics.mean(alone[e.id]), 3)})  # fmt: skip
    return out


if __name__ == "__main__":
    raise SystemExit(main())
