"""What one decoder-step session call costs beyond its nodes: the same step fed five ways, interleaved.

One SubTransformer (the `depth-3` homogeneous baseline `bench/ct2_peer.py` judges by, or `--arch largest`) is
stepped to position `--step` of the reference workload; then that one step is timed, fp32 and int8, as

- `stepper`: what the beam search calls (`OrtStepper`: everything bound once, the cache appended in place);
- `decode_step`: the plain call (the feed built in Python from the cache, a fresh cache back as numpy);
- `run`: `InferenceSession.run` on a feed dict built once (what is left without our Python);
- `run_with_ort_values`: the same inputs wrapped as `OrtValue`s once;
- `io_binding`: inputs bound once, outputs left in ONNX Runtime (no copy back to numpy).

Each way runs `--calls` steps per round after 20 untimed ones, the ways alternate within every round, and each
figure is the median over `--rounds` rounds, in microseconds per step.

    .venv/bin/python bench/step_overhead.py [--supernet supernet/supernet.pt] [--arch depth-3] [--json F]
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WAYS = ("stepper", "decode_step", "run", "run_with_ort_values", "io_binding")


def step_callables(translator, step: int) -> dict:
    """The five ways of calling the decoder step at position `step`, on a cache filled by real earlier steps."""
    import numpy as np
    import onnxruntime as ort

    from hat_engine.latency.timing import REFERENCE_WORKLOAD, reference_source
    from hat_engine.model.decoding import candidates_asked
    from hat_engine.runtime.onnx_signature import cross_names, self_names

    cfg, depth, beam = translator.model_config, translator.arch.decoder_depth, REFERENCE_WORKLOAD.beam
    k = candidates_asked(2 * beam, cfg.vocab_size)  # what the beam search asks per row
    encoder_out = translator.encode(reference_source(REFERENCE_WORKLOAD, cfg))
    encoder_out = encoder_out.index_select(np.zeros(beam, dtype=np.int64))
    tokens, cache = np.full((beam, 1), cfg.eos_id, np.int64), None
    for s in range(step):
        _, cache = translator.decode_step(tokens, encoder_out, cache, s, top=k)
    feed = {"tokens": tokens, "step": np.array(step, dtype=np.int64), "top_k": np.array([k], dtype=np.int64)}
    feed.update({n: np.ascontiguousarray(cache[n]) for n in (*self_names(depth), *cross_names(depth))})
    outputs = ["top_logprobs", "top_ids", *self_names(depth, "new_")]
    values = {k: ort.OrtValue.ortvalue_from_numpy(v) for k, v in feed.items()}
    binding = translator.decoder.io_binding()
    for name, value in values.items():
        binding.bind_ortvalue_input(name, value)
    for name in outputs:
        binding.bind_output(name)
    stepper = translator.stepper(reference_source(REFERENCE_WORKLOAD, cfg), np.zeros(beam, dtype=np.int64))
    stepper.__enter__()
    prefix = np.full((beam, step + 1), cfg.eos_id, np.int64)
    for s in range(step):
        stepper(prefix, s, k)
    return (
        {
            "stepper": lambda: stepper(prefix, step, k),  # rewrites position `step` each call
            "decode_step": lambda: translator.decode_step(tokens, encoder_out, cache, step, top=k),
            "run": lambda: translator.decoder.run(outputs, feed),
            "run_with_ort_values": lambda: translator.decoder.run_with_ort_values(outputs, values),
            "io_binding": lambda: translator.decoder.run_with_iobinding(binding),
        },
        len(feed),
        len(outputs),
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--supernet", type=Path, default=REPO / "supernet/supernet.pt")
    p.add_argument("--arch", default="depth-3", help="a hat catalog baseline (depth-N), or largest | smallest")
    p.add_argument("--step", type=int, default=15, help="the decoder position timed (cache of this length)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=200, help="timed steps per way per round")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path)
    args = p.parse_args()

    from hat_engine.catalog.build import baseline_archs
    from hat_engine.hardware import detect
    from hat_engine.model.supernet import load_supernet
    from hat_engine.runtime.onnx_export import quantize_export
    from hat_engine.runtime.onnx_graph import build_onnx
    from hat_engine.runtime.ort_decoding import OrtTranslator

    supernet, _ = load_supernet(args.supernet)
    named = {"largest": supernet.space.largest(), "smallest": supernet.space.smallest(),
             **baseline_archs(supernet.space)}  # fmt: skip
    if args.arch not in named:
        raise SystemExit(f"--arch {args.arch!r}: choose one of {', '.join(sorted(named))}")
    out = {"host": detect("onnxruntime", args.threads).profile_id, "arch": args.arch, "step": args.step,
           "arch_id": named[args.arch].arch_id(), "us_per_step": {}}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="hat-step-") as tmp:
        build_onnx(supernet.extract(named[args.arch]).eval(), tmp)
        quantize_export(tmp)
        for fmt in ("fp32", "int8"):
            translator = OrtTranslator.load(tmp, threads=args.threads, int8=fmt == "int8")
            ways, n_in, n_out = step_callables(translator, args.step)
            times: dict[str, list[float]] = {w: [] for w in WAYS}
            for _ in range(args.rounds):
                for way in WAYS:
                    call = ways[way]
                    for _ in range(20):
                        call()
                    started = time.perf_counter()
                    for _ in range(args.calls):
                        call()
                    times[way].append((time.perf_counter() - started) / args.calls * 1e6)
            medians = {w: round(statistics.median(t), 1) for w, t in times.items()}
            out["us_per_step"][fmt] = {**medians, "inputs": n_in, "outputs": n_out}
            vs = ", ".join(f"{w} {m} ({m / medians['decode_step']:.3f}x)" for w, m in medians.items())
            print(f"{out['host']} {args.arch} {fmt}, step {args.step}, {n_in} inputs / {n_out} outputs: {vs} us")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
