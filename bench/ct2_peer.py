"""Our runtime against the peer a user would pick: CTranslate2, on the same weights, side by side.

A *homogeneous* SubTransformer (same width, FFN and heads in every layer, qkv width == embedding width, every
decoder layer attending to the last encoder layer only) is the one shape CTranslate2's `TransformerSpec` can
express; `to_ctranslate2` writes its weights into that spec (pre-norm, final LayerNorms, sinusoidal positions
counted from 0, embeddings scaled by sqrt(d), output projection tied to the decoder embedding) and
`check_equivalence` compares teacher-forced log-probabilities of both runtimes token by token. What the peer
cannot run at all is said by `ct2_incompatibility`: heterogeneous per-layer widths and heads, arbitrary
encoder-decoder attention, qkv width != embedding width - the shapes hardware-aware search produces.

The benchmark translates the same test sentences, batch 1, beam 4, with the same thread count, fp32 vs fp32
and int8 vs int8 (our dynamically quantised ONNX vs CTranslate2's int8), alternating the two runtimes sentence by
sentence (and which goes first), and prints ours/CT2 latency ratios and the BLEU of each.

    .venv/bin/python bench/ct2_peer.py [--catalog catalog] [--data data] [--sentences 200] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from harness.ct2 import check_equivalence, to_ctranslate2

REPO = Path(__file__).resolve().parents[1]


def main() -> int:  # pragma: no cover - a benchmark, run by `make bench`
    import ctranslate2
    import sacrebleu

    from hat_engine.catalog.build import baseline_archs
    from hat_engine.data.tokenizer import Tokenizer
    from hat_engine.hardware import detect
    from hat_engine.model.supernet import load_supernet
    from hat_engine.model.translate import MAX_SOURCE_TOKENS
    from hat_engine.runtime.onnx_export import quantize_export
    from hat_engine.runtime.onnx_graph import build_onnx
    from hat_engine.runtime.ort_decoding import OrtTranslator
    from hat_engine.train.evaluation import test_sets

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--catalog", type=Path, default=REPO / "catalog", help="folder with supernet.pt and spm.model")
    p.add_argument("--data", type=Path, default=REPO / "data")
    p.add_argument("--baseline", default="depth-3", help="the homogeneous SubTransformer (a hat catalog baseline)")
    p.add_argument("--sentences", type=int, default=200, help="first N sentences of the Bible test set")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3, help="interleaved runs; the ratio is their median")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    supernet, _ = load_supernet(args.catalog / "supernet.pt")
    tokenizer = Tokenizer(args.catalog / "spm.model")
    pieces = [tokenizer._sp.id_to_piece(i) for i in range(tokenizer.vocab_size)]
    archs = baseline_archs(supernet.space)
    model = supernet.extract(archs[args.baseline]).eval()
    src_lines, refs = test_sets(args.data)["bible_test"]
    src_lines, refs = src_lines[: args.sentences], [r[: args.sentences] for r in refs]
    ids = [s[:MAX_SOURCE_TOKENS] + [tokenizer.eos_id] for s in tokenizer.encode(src_lines)]
    result = {"host": detect("onnxruntime", args.threads).profile_id, "baseline": args.baseline,
              "arch": model.arch.to_dict(), "sentences": len(ids), "threads": args.threads, "beam": 4}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        build_onnx(model, tmp / "onnx")
        quantize_export(tmp / "onnx")
        pairs = {}
        for precision, quant in (("fp32", "float32"), ("int8", "int8")):
            ct2_dir = to_ctranslate2(model, pieces, tmp / f"ct2-{precision}", quantization=quant)
            theirs = ctranslate2.Translator(str(ct2_dir), device="cpu", compute_type=quant,
                                            intra_threads=args.threads, inter_threads=1)  # fmt: skip
            ours = OrtTranslator.load(tmp / "onnx", threads=args.threads, int8=precision == "int8")
            pairs[precision] = (ours, theirs)
        result["max_logprob_diff_fp32"] = check_equivalence(model, pairs["fp32"][1], pieces, ids[:20])
        for precision, (ours, theirs) in pairs.items():
            times = {"ours": [], "ct2": []}
            hyps = {"ours": [], "ct2": []}

            def run_ours(seq, ours=ours):
                return ours.beam_search(np.array([seq]), beam=4)[0]

            def run_ct2(seq, theirs=theirs):
                limit = int(1.2 * len(seq) + 10)
                out = theirs.translate_batch([[pieces[i] for i in seq]], beam_size=4, max_decoding_length=limit)
                return [tokenizer._sp.piece_to_id(t) for t in out[0].hypotheses[0]]

            run_ours(ids[0]), run_ct2(ids[0])  # warm-up
            ratios = []
            for repeat in range(args.repeats):  # each pass over the sentences is one interleaved run
                passed = {"ours": 0.0, "ct2": 0.0}
                for i, seq in enumerate(ids):
                    pair = (("ours", run_ours), ("ct2", run_ct2))
                    for name, fn in pair if (i + repeat) % 2 == 0 else pair[::-1]:
                        started = time.perf_counter()
                        out = fn(seq)
                        elapsed = (time.perf_counter() - started) * 1000
                        times[name].append(elapsed)
                        passed[name] += elapsed
                        if repeat == 0:
                            hyps[name].append(tokenizer.decode(out))
                ratios.append(round(passed["ours"] / passed["ct2"], 3))
            same = sum(a == b for a, b in zip(hyps["ours"], hyps["ct2"], strict=True))
            result[precision] = {
                name: {"total_ms": round(sum(t) / args.repeats, 1), "p50_ms": round(statistics.median(t), 2),
                       "bleu": round(sacrebleu.corpus_bleu(hyps[name], refs).score, 2)}
                for name, t in times.items()
            }  # fmt: skip
            result[precision]["ratio_ours_over_ct2"] = statistics.median(ratios)
            result[precision]["ratios_per_run"] = ratios
            result[precision]["identical_translations"] = same
            r = result[precision]
            print(f"{precision}: ours {r['ours']['total_ms']:.0f} ms, CT2 {r['ct2']['total_ms']:.0f} ms per run of "
                  f"{len(ids)} sentences -> ours/CT2 {r['ratio_ours_over_ct2']:.3f} (median of {ratios}); BLEU "
                  f"ours {r['ours']['bleu']} CT2 {r['ct2']['bleu']}; identical translations {same}/{len(ids)}",
                  flush=True)  # fmt: skip
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
