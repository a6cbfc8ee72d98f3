"""This checkout's decoding against another git revision's, on the same ONNX graphs: ratios measured side by side.

Both sides time the reference workload (batch 1, 30 steps, beam 4) with `hat_engine.latency.timing`, fp32 and
int8, for the largest and the smallest SubTransformer of the same weights, each on the graphs its own code
builds (their format may differ); each side runs in its own Python processes (a `git worktree` of `--against`),
the sides alternate round by round, and which goes first alternates too. Prints each side's median p50 and
new/old ratios, and whether both decoded the same tokens.

    .venv/bin/python bench/search_loop.py [--against 1c5b80e] [--supernet supernet/supernet.pt] [--rounds 6]

The default revision is the last one whose beam search ran on torch tensors (before `Stepper`).
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

BUILD = """
import sys
from hat_engine.model.supernet import load_supernet
from hat_engine.runtime.onnx_export import quantize_export
from hat_engine.runtime.onnx_graph import build_onnx
supernet, _ = load_supernet(sys.argv[1])
arch = supernet.space.largest() if sys.argv[2] == "largest" else supernet.space.smallest()
build_onnx(supernet.extract(arch).eval(), sys.argv[3])
quantize_export(sys.argv[3])
"""

CHILD = """
import json, sys
from hat_engine.latency.timing import REFERENCE_WORKLOAD, reference_source, run_workload, time_cpu
from hat_engine.runtime.ort_decoding import OrtTranslator
import numpy as np
folder, int8, runs, ids = sys.argv[1], sys.argv[2] == "int8", int(sys.argv[3]), json.loads(sys.argv[4])
runner = OrtTranslator.load(folder, threads=1, int8=int8)
if hasattr(reference_source(REFERENCE_WORKLOAD, runner.model_config), "numpy"):  # a revision searching on torch
    import torch
    src = torch.tensor(ids)
else:
    src = np.array(ids, dtype=np.int64)
stats = time_cpu(lambda: run_workload(runner, src, REFERENCE_WORKLOAD), 2, runs)
print(json.dumps({"p50": stats.p50, "tokens": run_workload(runner, src, REFERENCE_WORKLOAD)}))
"""


def _env(root: Path) -> dict[str, str]:
    return {"PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}


def _child(root: Path, folder: Path, fmt: str, runs: int, ids: list[list[int]]) -> dict:
    """One side's timing in a fresh process on `root`'s code: p50 over `runs` runs, and the tokens decoded."""
    argv = [sys.executable, "-c", CHILD, str(folder), fmt, str(runs), json.dumps(ids)]
    out = subprocess.run(argv, cwd=root, env=_env(root), capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--against", default="1c5b80e", help="the git revision to compare with")
    p.add_argument("--supernet", type=Path, default=REPO / "supernet/supernet.pt")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--runs", type=int, default=10, help="timed runs per side per round")
    p.add_argument("--json", type=Path)
    args = p.parse_args()

    from hat_engine.hardware import detect
    from hat_engine.latency.timing import REFERENCE_WORKLOAD, reference_source
    from hat_engine.model.supernet import load_supernet

    supernet, _ = load_supernet(args.supernet)
    rows = []
    with tempfile.TemporaryDirectory(prefix="hat-loop-") as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), args.against], cwd=REPO, check=True,
                       capture_output=True)  # fmt: skip
        try:
            for label in ("largest", "smallest"):
                graphs = {side: Path(tmp) / f"{label}-{side}" for side in ("new", "old")}
                for side, root in (("new", REPO), ("old", old)):  # each side's graphs, by its own code
                    subprocess.run([sys.executable, "-c", BUILD, str(args.supernet.resolve()), label,
                                    str(graphs[side])], cwd=root, env=_env(root), check=True,
                                   capture_output=True)  # fmt: skip
                ids = reference_source(REFERENCE_WORKLOAD, supernet.model_config).tolist()  # both sides decode it
                for fmt in ("fp32", "int8"):
                    p50 = {"new": [], "old": []}
                    tokens = {}
                    for r in range(args.rounds):
                        for side in ("new", "old") if r % 2 == 0 else ("old", "new"):
                            result = _child(REPO if side == "new" else old, graphs[side], fmt, args.runs, ids)
                            p50[side].append(result["p50"])
                            tokens[side] = result["tokens"]
                    new, before = statistics.median(p50["new"]), statistics.median(p50["old"])
                    rows.append({"arch": label, "format": fmt, "new_p50_ms": round(new, 2),
                                 "old_p50_ms": round(before, 2), "new_over_old": round(new / before, 3),
                                 "same_tokens": tokens["new"] == tokens["old"]})  # fmt: skip
                    print(
                        f"{label:>9} {fmt}: new {new:7.2f} ms, {args.against} {before:7.2f} ms, "
                        f"new/old {new / before:.3f}, same tokens {tokens['new'] == tokens['old']}",
                        flush=True,
                    )
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=REPO, capture_output=True)
    if args.json:
        result = {
            "host": detect("onnxruntime", 1).profile_id,
            "against": args.against,
            "rounds": args.rounds,
            "runs": args.runs,
            "workload": "reference (batch 1, 30 steps, beam 4), 1 thread",
            "rows": rows,
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
