"""What the repeat ban (`decoding.no_repeat_ngram`, on in the served text path) costs in decoding time.

The reference workload (batch 1, 30 source tokens, exactly 30 decoder steps, beam 4) of catalog entries is timed
with the ban at `NO_REPEAT_NGRAM` and without it, the two decodes alternating run by run (`time_paired`, so a slow
spell of the VM hits both), on ONNX Runtime with one thread. The decoded tokens cannot end early (EOS is banned
until the last step), so the two sides decode the same number of steps and the ratio is the ban's own cost: the
extra candidates asked of the decoder graph and the n-gram comparisons.

    .venv/bin/python bench/repeat_ban.py [--catalog catalog] [--entry ID ...] [--runs 60]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path

from hat_engine.catalog.materialize import materialize
from hat_engine.catalog.schema import load_catalog
from hat_engine.latency.timing import REFERENCE_WORKLOAD, reference_source, run_workload, time_paired
from hat_engine.model.translate import NO_REPEAT_NGRAM
from hat_engine.runtime.runners import load_runner


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--catalog", type=Path, default=Path("catalog"))
    ap.add_argument("--entry", action="append", help="entry ids (default: each profile's fastest and slowest)")
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    catalog = load_catalog(args.catalog)
    entries = {e.id: e for e in catalog.entries}
    if args.entry:
        unknown = [i for i in args.entry if i not in entries]
        if unknown:
            raise SystemExit(f"repeat_ban.py: no such entry in {args.catalog}: {', '.join(unknown)}")
        picked = [entries[i] for i in args.entry]
    else:
        picked = []
        for profile in catalog.hardware_profiles:
            ladder = sorted(catalog.entries_for(profile.id), key=lambda e: e.p95)
            picked += [ladder[0], ladder[-1]]
    workload = REFERENCE_WORKLOAD
    results = []
    for entry in picked:
        fmt = entry.artifacts[0].format
        folder = materialize(args.catalog, catalog, entry, fmt, args.catalog / ".cache")
        model = load_runner(folder, fmt, 1)
        src = reference_source(workload, model.model_config)

        def decode(n: int, model=model, src=src):
            return run_workload(model, src, replace(workload, no_repeat_ngram=n))

        paired = time_paired(lambda: decode(NO_REPEAT_NGRAM), lambda: decode(0), warmup=5, runs=args.runs)
        row = {"entry": entry.id, "format": fmt, "p50_with_ms": round(paired.arch.p50, 3),
               "p50_without_ms": round(paired.reference.p50, 3), "ratio": round(paired.ratio, 4)}  # fmt: skip
        results.append(row)
        print(f"{entry.id} ({fmt}): p50 {row['p50_with_ms']} ms with the ban, {row['p50_without_ms']} ms without;"
              f" with/without, median of {args.runs} paired runs: {row['ratio']:.3f}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"no_repeat_ngram": NO_REPEAT_NGRAM, "runs": args.runs,
                                         "workload": asdict(workload), "results": results}, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
