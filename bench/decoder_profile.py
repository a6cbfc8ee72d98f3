"""Where the reference workload's time goes, against what the hardware could do: a roofline-style table.

For each SubTransformer (largest, smallest, and a mid-sized random one) and format (fp32, int8) the reference
workload (batch 1, 30 decoder steps, beam 4, 1 thread) runs under ONNX Runtime's profiler. Every node's time is
grouped into what it is (the 8k-way vocabulary projection, the other matrix products, attention's softmax and
masking, layer norms, the decoder's self-attention over its in-place K/V cache, the rest), and each group's FLOPs
and bytes are computed from the shapes the profiler recorded. What is not inside a node is the session call's own
overhead (a `run` minus its nodes) and the Python side (the beam search between calls). This host's limits are
measured in the same run: a large one-thread GEMM (fp32 peak GFLOP/s) and copies in cache and from DRAM (GB/s); a
group's floor is the larger of FLOPs/peak and bytes/in-cache bandwidth, and `bound` says which it is (with how far
above its floor the part runs), or `overhead` for time spent outside any node.

    .venv/bin/python bench/decoder_profile.py [--supernet supernet/supernet.pt] [--runs 10] [--json F] [--markdown F]

Measure on a quiet machine: the shares hold under load, the milliseconds do not.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
INT8_MATMULS = {"MatMulInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul"}
MATMULS = {"MatMul", "Gemm", "FusedGemm", "FusedMatMul", *INT8_MATMULS}
GROUPS = ("vocabulary projection", "other matmuls", "quantize activations", "attention softmax/mask",
          "layer norm", "self-attention", "other ops", "session-call overhead", "Python beam search")  # fmt: skip
_BYTES = {"float": 4, "int64": 8, "int32": 4, "uint8": 1, "int8": 1, "bool": 1, "float16": 2}


GEMM_N = 1024


def _gemm_rate(op: str, feeds: dict[str, np.ndarray]) -> float:
    """G(FL)OP/s of one `op` node ("MatMul" or "MatMulInteger") on GEMM_N^2 inputs, 1 thread, best of 5."""
    from onnx import TensorProto, checker, helper

    out_type = TensorProto.INT32 if op == "MatMulInteger" else TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
              for k, v in feeds.items()]  # fmt: skip
    graph = helper.make_graph([helper.make_node(op, list(feeds), ["c"])], op, inputs,
                              [helper.make_tensor_value_info("c", out_type, [GEMM_N, GEMM_N])])  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    checker.check_model(model)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    session.run(None, feeds)
    best = min(_timed(lambda: session.run(None, feeds)) for _ in range(5))
    return round(2 * GEMM_N**3 / best / 1e9, 1)


def host_limits() -> dict:
    """One-thread fp32 GEMM GFLOP/s (ONNX Runtime, 1024^3) and copy GB/s (read + write) of a 16 MB array (held
    in a 32 MB L3) and of a 256 MB one (from DRAM); best of 5 each."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((GEMM_N, GEMM_N), dtype=np.float32)
    limits = {"gemm_gflops": _gemm_rate("MatMul", {"a": x, "b": x.copy()}),
              "int8_gemm_gops": _gemm_rate("MatMulInteger", {
                  "a": rng.integers(0, 255, (GEMM_N, GEMM_N), dtype=np.uint8),
                  "b": rng.integers(-127, 127, (GEMM_N, GEMM_N), dtype=np.int8)})}  # fmt: skip
    for key, mb in (("cache_copy_gbs", 16), ("dram_copy_gbs", 256)):
        src = np.ones(mb * 1024 * 1024 // 4, dtype=np.float32)
        out = np.empty_like(src)
        seconds = min(_timed(lambda s=src, o=out: np.copyto(o, s)) for _ in range(5))
        limits[key] = round(2 * src.nbytes / seconds / 1e9, 1)
    return limits


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _shapes(arg: list) -> list[tuple[str, list[int]]]:
    return [(next(iter(d)), next(iter(d.values()))) for d in arg]


def _flops_bytes(op: str, inputs: list, outputs: list) -> tuple[float, float]:
    """A node's FLOPs (2 per multiply-add) and the bytes it reads and writes, from the shapes it ran with."""
    size = lambda ts: sum(_BYTES.get(t, 4) * float(np.prod(s)) for t, s in ts)  # noqa: E731
    if op == "Gather":  # reads the rows it gathers, not the whole table
        return 0.0, 2 * size(outputs) + size(inputs[1:])
    if op == "GroupQueryAttention":  # q (N, 1, 3*H*d) packed; past K/V (N, H, capacity, d), updated in place
        qkv, past = inputs[0][1], next(shape for _, shape in inputs if len(shape) == 4)  # the profiler skips ""
        n, keys = float(qkv[0]), float(np.prod(past[1:]))  # keys = H * capacity * d: counted over the capacity,
        return 2 * 2 * n * keys, 2 * 4 * n * keys + size(inputs[:1]) + size(outputs[:1])  # at most 2x the filled
    moved = size(inputs) + size(outputs)
    if op in MATMULS and inputs and outputs and inputs[0][1]:
        a, n = inputs[0][1], outputs[0][1][-1]  # A (..., M, K) -> (..., M, N)
        if len(inputs) < 2 or len(inputs[1][1]) < 2:  # B is a weight: the profiler lists no shape for it
            moved += a[-1] * n * (1 if op in INT8_MATMULS else 4)
        return 2.0 * float(np.prod(a)) * n, moved
    return 0.0, moved


def _group(op: str, outputs: list, vocab: int) -> str:
    if op in MATMULS:
        return "vocabulary projection" if outputs and outputs[0][1][-1] == vocab else "other matmuls"
    if op == "DynamicQuantizeLinear":
        return "quantize activations"
    if op in ("Softmax", "Where", "Not", "Equal"):
        return "attention softmax/mask"
    if op in ("LayerNormalization", "SimplifiedLayerNormalization", "SkipLayerNormalization"):
        return "layer norm"
    if op == "GroupQueryAttention":  # the decoder step's self-attention, appending to its cache in place
        return "self-attention"
    return "other ops"


class _TimedSession:
    """An InferenceSession whose `run` and `run_with_iobinding` calls are timed (wall clock), for the session-call
    overhead."""

    def __init__(self, session: ort.InferenceSession):
        self.session, self.seconds, self.calls = session, 0.0, 0

    def io_binding(self):
        return self.session.io_binding()

    def _timed(self, fn, *args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1

    def run(self, *args, **kwargs):
        return self._timed(self.session.run, *args, **kwargs)

    def run_with_iobinding(self, *args, **kwargs):
        return self._timed(self.session.run_with_iobinding, *args, **kwargs)


def profile(folder: Path, int8: bool, runs: int, prefix: Path) -> dict:
    """`runs` reference workloads on the export in `folder`: timed without the profiler (wall time, time inside
    `run` calls), then again under it for each node's kernel time (the profiler's own cost falls between nodes)."""
    from hat_engine.latency.timing import REFERENCE_WORKLOAD, reference_source, run_workload
    from hat_engine.runtime.ort_decoding import OrtTranslator, session_options

    translator = OrtTranslator.load(folder, threads=1, int8=int8)
    src = reference_source(REFERENCE_WORKLOAD, translator.model_config)
    plain = {part: _TimedSession(getattr(translator, part)) for part in ("encoder", "decoder")}
    translator.encoder, translator.decoder = plain["encoder"], plain["decoder"]
    for _ in range(3):
        run_workload(translator, src, REFERENCE_WORKLOAD)
    for t in plain.values():
        t.seconds, t.calls = 0.0, 0
    start = time.perf_counter()
    for _ in range(runs):
        run_workload(translator, src, REFERENCE_WORKLOAD)
    wall = (time.perf_counter() - start) / runs
    session_s = sum(t.seconds for t in plain.values()) / runs
    calls = sum(t.calls for t in plain.values()) / runs

    meta = json.loads((folder / "export.json").read_text())
    files = meta["files_int8" if int8 else "files"]
    sessions = {}
    for part in ("encoder", "decoder"):
        opts = session_options(1)
        opts.enable_profiling = True
        opts.profile_file_prefix = str(prefix) + f"-{part}"
        sessions[part] = ort.InferenceSession(str(folder / files[part]), opts, providers=["CPUExecutionProvider"])
    translator.encoder, translator.decoder = sessions["encoder"], sessions["decoder"]
    run_workload(translator, src, REFERENCE_WORKLOAD)  # the profiled sessions' own warm-up, not counted
    timed = {part: _TimedSession(s) for part, s in sessions.items()}
    translator.encoder, translator.decoder = timed["encoder"], timed["decoder"]
    start = time.perf_counter()
    for _ in range(runs):
        run_workload(translator, src, REFERENCE_WORKLOAD)
    wall_profiled = (time.perf_counter() - start) / runs
    session_profiled = sum(t.seconds for t in timed.values()) / runs
    vocab = translator.model_config.vocab_size
    groups: dict[str, dict] = defaultdict(lambda: {"us": 0.0, "flops": 0.0, "bytes": 0.0})
    node_us = 0.0
    for part, session in sessions.items():
        events = json.loads(Path(session.end_profiling()).read_text())
        runs_seen = [e for e in events if e.get("name") == "model_run"]
        first_counted = runs_seen[-timed[part].calls]["ts"] if timed[part].calls else float("inf")
        for e in events:
            if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time") or e["ts"] < first_counted:
                continue
            a = e.get("args", {})
            op = a.get("op_name", "?")
            inputs, outputs = _shapes(a.get("input_type_shape", [])), _shapes(a.get("output_type_shape", []))
            flops, moved = _flops_bytes(op, inputs, outputs)
            g = groups[_group(op, outputs, vocab)]
            g["us"] += e["dur"] / runs
            g["flops"] += flops / runs
            g["bytes"] += moved / runs
            node_us += e["dur"] / runs
    # The split comes from the profiled runs (kernels, the rest of each `run`, Python between calls), scaled to
    # the unprofiled wall time: the profiler slows everything down, so its milliseconds are not the real ones.
    groups["session-call overhead"]["us"] = max(session_profiled * 1e6 - node_us, 0.0)
    groups["Python beam search"]["us"] = max((wall_profiled - session_profiled) * 1e6, 0.0)
    scale = wall / wall_profiled
    for g in groups.values():
        g["us"] *= scale
    return {"wall_ms": round(wall * 1e3, 3), "profiled_wall_ms": round(wall_profiled * 1e3, 3),
            "unprofiled_python_ms": round((wall - session_s) * 1e3, 3), "session_calls": calls,
            "groups": {k: {m: round(v, 1) for m, v in groups[k].items()} for k in GROUPS}}  # fmt: skip


def table(label: str, result: dict, limits: dict, int8: bool = False) -> list[str]:
    wall_us = result["wall_ms"] * 1e3
    bandwidth = limits["cache_copy_gbs"] * 1e3  # bytes/us
    fp32_peak, int8_peak = limits["gemm_gflops"] * 1e3, limits["int8_gemm_gops"] * 1e3  # (integer) FLOP/us
    lines = [f"**{label}**: {result['wall_ms']:.2f} ms per workload ({result['profiled_wall_ms']:.2f} under the "
             f"profiler), {result['session_calls']:.0f} session calls", "",
             "| part | ms | share | MFLOP | MB moved | floor ms | bound |",
             "|---|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    floor_total = 0.0
    for name in GROUPS:
        g = result["groups"][name]
        peak = int8_peak if int8 and name in ("vocabulary projection", "other matmuls") else fp32_peak
        floor = max(g["flops"] / peak, g["bytes"] / bandwidth)
        floor_total += floor
        if g["flops"] == 0 and g["bytes"] == 0:
            bound = "overhead"
        else:
            bound = "compute" if g["flops"] / peak >= g["bytes"] / bandwidth else "memory"
            bound += "" if g["us"] < 3 * floor else f" (x{g['us'] / max(floor, 1e-9):.0f} its floor)"
        lines.append(f"| {name} | {g['us'] / 1e3:.2f} | {100 * g['us'] / wall_us:.0f} % | {g['flops'] / 1e6:.1f} | "
                     f"{g['bytes'] / 1e6:.1f} | {floor / 1e3:.3f} | {bound} |")  # fmt: skip
    lines += ["", f"Floor of the whole workload (every part at its own limit): {floor_total / 1e3:.2f} ms; "
              f"measured / floor = {wall_us / max(floor_total, 1e-9):.1f}x.", ""]  # fmt: skip
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--supernet", type=Path, default=REPO / "supernet/supernet.pt")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--json", type=Path)
    p.add_argument("--markdown", type=Path, help="also write the tables here")
    args = p.parse_args()

    from hat_engine.hardware import detect
    from hat_engine.model.supernet import load_supernet
    from hat_engine.runtime.onnx_export import quantize_export
    from hat_engine.runtime.onnx_graph import build_onnx

    supernet, _ = load_supernet(args.supernet)
    space = supernet.space
    archs = {
        "largest": space.largest(),
        "random (seed 7)": space.sample(random.Random(7)),
        "smallest": space.smallest(),
    }
    limits = host_limits()
    host = detect("onnxruntime", 1).profile_id
    lines = [
        f"Host `{host}`: one-thread fp32 GEMM {limits['gemm_gflops']} GFLOP/s, int8 GEMM (MatMulInteger) "
        f"{limits['int8_gemm_gops']} GOP/s (1024^3, ONNX Runtime); copy "
        f"{limits['cache_copy_gbs']} GB/s at 16 MB (in L3), {limits['dram_copy_gbs']} GB/s at 256 MB (DRAM), read "
        "+ write. A part's floor is the larger of its FLOPs at the GEMM peak and its bytes at the in-cache "
        f"bandwidth: the fastest this core could run it. Reference workload, 1 thread, {args.runs} runs.",
        "",
    ]
    results = {}
    with tempfile.TemporaryDirectory(prefix="hat-profile-") as tmp:
        for label, arch in archs.items():
            folder = Path(tmp) / label.split()[0]
            model = supernet.extract(arch).eval()
            build_onnx(model, folder)
            quantize_export(folder)
            for fmt in ("fp32", "int8"):
                result = profile(folder, fmt == "int8", args.runs, Path(tmp) / f"{label.split()[0]}-{fmt}")
                result.update(arch=arch.to_dict(), arch_id=arch.arch_id(), params=model.num_parameters())
                results[f"{label} {fmt}"] = result
                block = table(f"{label}, {fmt} ({model.num_parameters() / 1e6:.1f}M params, {arch.arch_id()})",
                              result, limits, fmt == "int8")  # fmt: skip
                print("\n".join(block), flush=True)
                lines += block
    if args.json:
        args.json.write_text(json.dumps({"host": host, "limits": limits, "runs": args.runs, "results": results},
                                        indent=2) + "\n")  # fmt: skip
    if args.markdown:
        args.markdown.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
