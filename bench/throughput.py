"""Throughput at an SLA on all the host's cores: our runtime as N worker processes x M threads, or as one process
running N translations at a time on one model (`ours-threads`, what CTranslate2's inter_threads are), against
CTranslate2 as inter_threads x intra_threads, on the same weights and sentences.

The model is `bench/ct2_peer.py`'s homogeneous baseline (the one shape CTranslate2 can run), int8 by default.
Closed-loop clients (1, 2, 4, 8 at a time) send one sentence per request (beam 4, no batching on either side)
for `--seconds` each; a configuration's throughput is the best requests/s of a level whose p95 latency stays
within `--sla-ms`. Every configuration of both runtimes runs once per round, in a shuffled order, and each
figure is the median over `--rounds` rounds.

    .venv/bin/python bench/throughput.py [--catalog catalog] [--sla-ms 200] [--precision int8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLIENTS = (1, 2, 4, 8)
_worker = None


def _init_worker(folder: str, threads: int, int8: bool) -> None:
    global _worker
    os.environ["OMP_NUM_THREADS"] = str(threads)
    from hat_engine.runtime.ort_decoding import OrtTranslator

    _worker = OrtTranslator.load(folder, threads=threads, int8=int8)


def _translate(seq: list[int]) -> int:
    import numpy as np

    return len(_worker.beam_search(np.array([seq]), beam=4)[0])


def closed_loop(call, sentences: list, clients: int, seconds: float) -> dict:
    """`clients` threads, each sending one request at a time for `seconds`: requests/s and latency p50/p95."""
    latencies: list[float] = []
    lock, stop = threading.Lock(), time.perf_counter() + seconds

    def client(offset: int) -> None:
        i = offset
        while time.perf_counter() < stop:
            started = time.perf_counter()
            call(sentences[i % len(sentences)])
            with lock:
                latencies.append((time.perf_counter() - started) * 1000)
            i += clients

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ordered = sorted(latencies)
    return {"clients": clients, "rps": round(len(ordered) / (time.perf_counter() - started), 2),
            "p50_ms": round(statistics.median(ordered), 1),
            "p95_ms": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 1)}  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--catalog", type=Path, default=REPO / "catalog", help="folder with supernet.pt and spm.model")
    p.add_argument("--data", type=Path, default=REPO / "data")
    p.add_argument("--baseline", default="depth-3")
    p.add_argument("--precision", choices=["int8", "fp32"], default="int8")
    p.add_argument("--sentences", type=int, default=100, help="first N Bible test sentences, cycled")
    p.add_argument("--sla-ms", type=float, default=200.0, help="p95 latency budget per request")
    p.add_argument("--seconds", type=float, default=6.0, help="per load level")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", type=Path)
    args = p.parse_args()

    import ctranslate2
    import numpy as np

    from harness.ct2 import to_ctranslate2
    from hat_engine.catalog.build import baseline_archs
    from hat_engine.data.tokenizer import Tokenizer
    from hat_engine.hardware import detect
    from hat_engine.model.supernet import load_supernet
    from hat_engine.model.translate import MAX_SOURCE_TOKENS
    from hat_engine.runtime.onnx_export import quantize_export
    from hat_engine.runtime.onnx_graph import build_onnx
    from hat_engine.train.evaluation import test_sets

    supernet, _ = load_supernet(args.catalog / "supernet.pt")
    tokenizer = Tokenizer(args.catalog / "spm.model")
    pieces = [tokenizer._sp.id_to_piece(i) for i in range(tokenizer.vocab_size)]
    model = supernet.extract(baseline_archs(supernet.space)[args.baseline]).eval()
    src_lines, _ = test_sets(args.data)["bible_test"]
    ids = [s[:MAX_SOURCE_TOKENS] + [tokenizer.eos_id] for s in tokenizer.encode(src_lines[: args.sentences])]
    cores = len(os.sched_getaffinity(0))
    shapes = [(n, m) for n in range(1, cores + 1) for m in range(1, cores + 1) if n * m <= cores]
    quant = "int8" if args.precision == "int8" else "float32"
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="hat-throughput-") as tmp:
        folder = Path(tmp) / "onnx"
        build_onnx(model, folder)
        quantize_export(folder)
        ct2_dir = to_ctranslate2(model, pieces, Path(tmp) / "ct2", quantization=quant)
        configs = [("ours", n, m) for n, m in shapes] + [("ct2", n, m) for n, m in shapes]
        configs += [("ours-threads", n, m) for n, m in shapes if n > 1]  # n = 1 is "ours 1xm"
        rng = random.Random(0)
        for r in range(args.rounds):
            rng.shuffle(configs)
            for runtime, n, m in configs:
                name = f"{runtime} {n}x{m}"
                if runtime == "ours":
                    pool = ProcessPoolExecutor(n, mp_context=get_context("spawn"), initializer=_init_worker,
                                               initargs=(str(folder), m, args.precision == "int8"))  # fmt: skip
                    list(pool.map(_translate, ids[: 2 * n]))  # every worker loaded and warm
                    call, close = (lambda seq, pool=pool: pool.submit(_translate, seq).result()), pool.shutdown
                elif runtime == "ours-threads":  # one model; ONNX Runtime runs concurrent calls without the GIL
                    from hat_engine.runtime.ort_decoding import OrtTranslator

                    shared = OrtTranslator.load(folder, threads=m, int8=args.precision == "int8")
                    pool = ThreadPoolExecutor(n)

                    def call(seq, pool=pool, t=shared):
                        return pool.submit(lambda: t.beam_search(np.array([seq]), beam=4)).result()

                    for seq in ids[: 2 * n]:
                        call(seq)
                    close = pool.shutdown
                else:
                    translator = ctranslate2.Translator(str(ct2_dir), device="cpu", compute_type=quant,
                                                        inter_threads=n, intra_threads=m)  # fmt: skip

                    def call(seq, t=translator):
                        limit = int(1.2 * len(seq) + 10)
                        return t.translate_batch([[pieces[i] for i in seq]], beam_size=4, max_decoding_length=limit)

                    call(ids[0])
                    close = lambda: None  # noqa: E731
                levels = [closed_loop(call, ids, c, args.seconds) for c in CLIENTS]
                close()
                within = [lv for lv in levels if lv["p95_ms"] <= args.sla_ms]
                best = max((lv["rps"] for lv in within), default=0.0)
                results.setdefault(name, []).append({"round": r + 1, "best_rps_within_sla": best, "levels": levels})
                print(f"round {r + 1} {name}: best {best} req/s within {args.sla_ms:g} ms; "
                      + ", ".join(f"{lv['clients']}c {lv['rps']} req/s p95 {lv['p95_ms']}" for lv in levels),
                      flush=True)  # fmt: skip
    summary = {name: statistics.median(x["best_rps_within_sla"] for x in runs) for name, runs in results.items()}
    best_ours = max((k for k in summary if k.startswith("ours")), key=summary.get)
    best_ct2 = max((k for k in summary if k.startswith("ct2")), key=summary.get)
    ratio = summary[best_ours] / summary[best_ct2] if summary[best_ct2] else None
    print("\nmedian best req/s within the SLA: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.items())))
    print(f"best ours {best_ours} {summary[best_ours]} vs best CT2 {best_ct2} {summary[best_ct2]}: ratio "
          f"{ratio if ratio is None else round(ratio, 3)}")  # fmt: skip
    if args.json:
        out = {"host": detect("onnxruntime", 1).profile_id, "cores": cores, "precision": args.precision,
               "baseline": args.baseline, "sla_ms": args.sla_ms, "seconds": args.seconds, "rounds": args.rounds,
               "summary_rps": summary, "best_ours": best_ours, "best_ct2": best_ct2,
               "ours_over_ct2": ratio, "runs": results}  # fmt: skip
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
