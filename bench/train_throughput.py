"""Training throughput of the real trainer (`hat supernet train`), configurations side by side in one run.

Each configuration trains the same supernet from the same seed on the same real batches (the first updates of
epoch 0 of the mixture) for a fixed number of updates; rounds interleave the configurations, since the machine
is noisy. Throughput is target tokens per second of `Trainer.run` (data loading excluded), read from the run's
checkpoint. The first configuration is the trainer as it was before this benchmark: bf16 autocast always on,
one process with 2 threads. The bf16 rows pay only where bf16 is native (AMX, AVX-512 BF16: `hardware.native_bf16`).

    .venv/bin/python bench/train_throughput.py [--rounds 2] [--steps 8] [--config configs/supernet.yaml] [--only 3 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

# (label, bf16, processes, threads per process, updates as a multiple of --steps)
CONFIGS = [
    ("before: bf16 always, 1 x 2 threads", True, 1, 2, 1 / 6),
    ("fp32, 1 x 2 threads", False, 1, 2, 1),
    ("fp32, 1 x 1 thread", False, 1, 1, 1),
    ("fp32, 2 ranks x 1 thread (torchrun)", False, 2, 1, 0.5),
    ("bf16, 1 x 1 thread", True, 1, 1, 1),
    ("bf16, 2 ranks x 1 thread (torchrun)", True, 2, 1, 0.5),
]


def measure(base: dict, bf16: bool, procs: int, threads: int, steps: int, folder: Path) -> tuple[float, int]:
    """(target tokens/s, updates) of one fresh run."""
    import torch

    out = folder / f"run-{bf16}-{procs}-{threads}"
    cfg = {**base, "bf16": bf16, "max_steps": max(steps, 1), "out_dir": str(out), "export": None,
           "validate_every": 10**9, "checkpoint_minutes": 10**6}  # fmt: skip
    (folder / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    hat = [sys.executable, "-m", "search_jobs.cli", "supernet", "train", "--config", str(folder / "cfg.yaml")]
    if procs > 1:
        hat = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}", *hat[1:]]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run([*hat, "--threads", str(threads)], check=True, cwd=REPO, env=env, capture_output=True)
    state = torch.load(out / "checkpoint.pt", weights_only=True)["extra"]["state"]  # elapsed: the updates only
    return state["tokens"] / state["elapsed"], state["step"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=REPO / "configs/supernet.yaml")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--steps", type=int, default=6, help="updates per run of the fp32 1-process configurations")
    p.add_argument(
        "--only",
        nargs="+",
        type=int,
        metavar="N",
        help="run only these configurations (0-based indices into CONFIGS; the first listed is the base)",
    )
    args = p.parse_args()
    configs = [CONFIGS[i] for i in args.only] if args.only else CONFIGS
    base = yaml.safe_load(args.config.read_text())
    base["valid_sentences"] = 1  # the end-of-run validation is not timed, but costs the benchmark's time
    rates: dict[str, list[float]] = {label: [] for label, *_ in configs}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = configs if r % 2 == 0 else configs[::-1]
            for label, bf16, procs, threads, share in order:
                rate, steps = measure(base, bf16, procs, threads, round(args.steps * share), Path(tmp))
                rates[label].append(rate)
                print(f"round {r + 1}: {label:<40} {rate:8.0f} target tok/s ({steps} updates)", flush=True)
    first = statistics.median(rates[configs[0][0]])
    print(f"\n{'configuration':<40} {'tok/s (median)':>15} {'vs first':>10}")
    for label, values in rates.items():
        median = statistics.median(values)
        print(f"{label:<40} {median:>15.0f} {median / first:>9.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
