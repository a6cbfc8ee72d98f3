"""ONNX Runtime vs PyTorch eager, and int8 vs fp32, on the reference workload: ratios measured side by side.

For three SubTransformers (largest, smallest, one random), the same extracted weights run as a torch eager
`Transformer`, as ONNX graphs on ONNX Runtime (fp32) and as int8 dynamically quantised graphs. Runs are
interleaved (round-robin over the runtimes, several rounds) so that machine noise hits all of them alike;
threads are pinned to the same count everywhere.

    .venv/bin/python bench/runtime_latency.py [--supernet catalog/supernet.pt] [--threads 1] [--rounds 5]
"""

import argparse
import json
import random
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from hat_engine.hardware import detect
from hat_engine.latency.timing import REFERENCE_WORKLOAD, reference_source, run_workload, time_cpu
from hat_engine.model.supernet import load_supernet
from hat_engine.runtime.onnx_export import quantize_export
from hat_engine.runtime.onnx_graph import build_onnx
from hat_engine.runtime.ort_decoding import OrtTranslator


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--supernet", type=Path, default=Path("catalog/supernet.pt"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds of --runs timed runs each")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    rows = []
    torch.set_num_threads(args.threads)
    supernet, _ = load_supernet(args.supernet)
    space = supernet.space
    archs = {"largest": space.largest(), "smallest": space.smallest(), "random": space.sample(random.Random(7))}
    print(f"host: {detect('onnxruntime', args.threads).profile_id}; workload {REFERENCE_WORKLOAD}")
    print(f"{'arch':>9} {'torch ms':>9} {'ORT fp32':>9} {'ORT int8':>9} {'torch/ORT':>10} {'fp32/int8':>10}")
    for label, arch in archs.items():
        model = supernet.extract(arch).eval()
        with tempfile.TemporaryDirectory() as tmp:
            build_onnx(model, tmp)
            quantize_export(tmp)
            runners = {
                "torch": model,
                "ort": OrtTranslator.load(tmp, threads=args.threads),
                "int8": OrtTranslator.load(tmp, threads=args.threads, int8=True),
            }
            src = reference_source(REFERENCE_WORKLOAD, model.model_config)
            samples = {name: [] for name in runners}
            with torch.inference_mode():
                for _ in range(args.rounds):
                    for name, runner in runners.items():
                        stats = time_cpu(lambda r=runner, s=src: run_workload(r, s, REFERENCE_WORKLOAD), 1, args.runs)
                        samples[name].append(stats.p50)
        ms = {name: statistics.median(values) for name, values in samples.items()}
        print(f"{label:>9} {ms['torch']:9.1f} {ms['ort']:9.1f} {ms['int8']:9.1f} "
              f"{ms['torch'] / ms['ort']:9.2f}x {ms['ort'] / ms['int8']:9.2f}x")  # fmt: skip
        rows.append({"arch": label, "params": model.num_parameters(), "torch_ms": round(ms["torch"], 2),
                     "ort_fp32_ms": round(ms["ort"], 2), "ort_int8_ms": round(ms["int8"], 2),
                     "torch_over_ort": round(ms["torch"] / ms["ort"], 3),
                     "fp32_over_int8": round(ms["ort"] / ms["int8"], 3)})  # fmt: skip
    if args.json:
        result = {"host": detect("onnxruntime", args.threads).profile_id, "threads": args.threads,
                  "rounds": args.rounds, "runs": args.runs, "archs": rows}  # fmt: skip
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
