"""How a catalog build should score on this host: two artifacts in two one-thread processes
(`EntryBuilder.score_ahead`, `hat catalog build --score-workers 2`) against the same two in turn in one process on
2 threads (`--score-workers 1`), alternating rounds, each round on a fresh score cache (not in `make bench`).

    .venv/bin/python bench/score_workers.py [--catalog catalog] [--data data] [--limit 150] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    from hat_engine.catalog.build import EntryBuilder, ProfileTarget, baseline_archs
    from hat_engine.hardware import detect

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--catalog", type=Path, default=REPO / "catalog", help="folder with supernet.pt and spm.model")
    p.add_argument("--data", type=Path, default=REPO / "data")
    p.add_argument("--limit", type=int, default=150, help="test sentences per set and artifact")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--json", type=Path)
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="score-workers-"))
    host = detect(probe_cuda=False)
    seconds: dict[str, list[float]] = {"2 processes x 1 thread": [], "1 process x 2 threads": []}
    try:
        for r in range(args.rounds):
            for name in seconds if r % 2 == 0 else reversed(list(seconds)):
                out = work / f"{r}-{name[0]}"
                builder = EntryBuilder(out, args.catalog / "supernet.pt", args.catalog / "spm.model", args.data,
                                       eval_limit=args.limit, eval_threads=2)  # fmt: skip
                archs = baseline_archs(builder.supernet.space)
                target = ProfileTarget(host.profile_id, "onnxruntime", 1, host.to_dict())
                jobs = [(n, archs[n], target, "onnx") for n in ("depth-1", "depth-2")]
                for entry_id, arch, t, fmt in jobs:  # materialised before the clock starts
                    builder._materialized(entry_id, arch, t, 0.0, 0.0, fmt, None)
                started = time.perf_counter()
                if name.startswith("2 processes"):
                    builder.score_ahead(jobs, workers=2, say=lambda _: None)
                else:
                    for entry_id, arch, t, fmt in jobs:
                        builder.prepare(entry_id, arch, t, 0.0, 0.0, fmt)
                seconds[name].append(time.perf_counter() - started)
                print(f"round {r + 1} {name}: {seconds[name][-1]:.1f} s", flush=True)
                shutil.rmtree(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    medians = {k: round(statistics.median(v), 2) for k, v in seconds.items()}
    ratio = medians["1 process x 2 threads"] / medians["2 processes x 1 thread"]
    print(f"host {host.profile_id}: median {medians}; 2 processes are {ratio:.2f}x as fast")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "host": host.profile_id,
                    "seconds": seconds,
                    "medians": medians,
                    "speedup_two_processes": round(ratio, 3),
                    "limit": args.limit,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
