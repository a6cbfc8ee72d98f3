"""`make bench`: every benchmark in turn, one at a time (the machine is small and noisy), into bench/RESULTS.md.

Each benchmark writes JSON beside its console output (bench/results/*.json, *.log); this script renders them with
the machine fingerprint and the date. A benchmark that fails is reported as failed, with the tail of its log.
With --only, the other steps' last results (bench/results/) are rendered too, each with the time it ran.

    .venv/bin/python bench/run_all.py [--only runtime,ct2-1t,ct2-2t,http,load,robustness,memory,throughput] [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

OUT = REPO / "bench" / "results"


def steps(quick: bool) -> dict[str, list[str]]:
    seconds = "15" if quick else "60"
    return {
        "runtime": ["bench/runtime_latency.py", "--threads", "1"],
        "ct2-1t": ["bench/ct2_peer.py", "--threads", "1", "--sentences", "50" if quick else "200"],
        "ct2-2t": ["bench/ct2_peer.py", "--threads", "2", "--sentences", "50" if quick else "200"],
        "http": ["bench/service_http.py", "--threads", "2"],
        "load": ["bench/load_sla.py", "--threads", "2", "--seconds", seconds],
        "robustness": ["bench/robustness.py", "--fuzz-examples", "200" if quick else "1000"],
        "memory": ["bench/serving_memory.py"],
        "throughput": ["bench/throughput.py", "--seconds", "3" if quick else "5"],
        "repeat-ban": ["bench/repeat_ban.py", "--runs", "20" if quick else "60"],
    }


def run(name: str, argv: list[str]) -> dict:
    OUT.mkdir(parents=True, exist_ok=True)
    log, out = OUT / f"{name}.log", OUT / f"{name}.json"
    out.unlink(missing_ok=True)
    started = time.perf_counter()
    print(f"== {name}: {' '.join(argv)}", flush=True)
    with open(log, "w") as handle:
        proc = subprocess.Popen([sys.executable, *argv, "--json", str(out)], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)  # fmt: skip
        for line in proc.stdout:
            sys.stdout.write(line)
            handle.write(line)
        proc.wait()
    minutes = round((time.perf_counter() - started) / 60, 1)
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    if proc.returncode != 0 or not out.is_file():
        record = {"failed": True, "exit_code": proc.returncode, "minutes": minutes, "ran": when,
                  "log_tail": log.read_text(errors="replace")[-1500:]}  # fmt: skip
    else:
        record = {"failed": False, "minutes": minutes, "ran": when, "result": json.loads(out.read_text())}
    (OUT / f"{name}.run.json").write_text(json.dumps(record, indent=1))
    return record


def earlier(name: str) -> dict | None:
    """The last recorded run of a step (bench/results/NAME.run.json), if any."""
    path = OUT / f"{name}.run.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _fmt(x) -> str:
    return "n/a" if x is None else (f"{x:g}" if isinstance(x, int | float) else str(x))


def render(results: dict, fingerprint: dict) -> str:
    steps_run = ", ".join(f"{name} at {r.get('ran', 'n/a')}" for name, r in results.items())
    lines = ["# Benchmark results", "", f"Produced by `bench/run_all.py` (steps: {steps_run}). "
             f"Machine: `{fingerprint['profile_id']}` "
             f"({fingerprint['cpu_model']}, {fingerprint['logical_cores']} logical cores, CPU limit "
             f"{fingerprint['cpu_limit']}, ISA {', '.join(fingerprint['isa_flags'])}).", "",
             "Every figure below was measured in that run; ratios come from interleaved runs.", ""]  # fmt: skip
    for name, r in results.items():
        if r["failed"]:
            lines += [f"## {name}: FAILED (exit {r['exit_code']})", "", "```", r["log_tail"], "```", ""]
    if "runtime" in results and not results["runtime"]["failed"]:
        res = results["runtime"]["result"]
        lines += ["## ONNX Runtime vs PyTorch eager, int8 vs fp32 (reference workload)", "",
                  f"{res['threads']} thread(s), median of {res['rounds']} interleaved rounds.", "",
                  "| arch | params | torch ms | ORT fp32 ms | ORT int8 ms | torch/ORT | fp32/int8 |",
                  "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for a in res["archs"]:
            lines.append(f"| {a['arch']} | {a['params']:,} | {a['torch_ms']} | {a['ort_fp32_ms']} | {a['ort_int8_ms']} "
                         f"| {a['torch_over_ort']}x | {a['fp32_over_int8']}x |")  # fmt: skip
        lines.append("")
    ct2 = {k: v for k, v in results.items() if k.startswith("ct2") and not v["failed"]}
    if ct2:
        lines += ["## Against CTranslate2 (same weights, 200 Bible test sentences, batch 1, beam 4)", "",
                  "| threads | precision | ours ms | CT2 ms | ours/CT2 (median) | per run | BLEU ours | BLEU CT2 "
                  "| identical |", "|---:|---|---:|---:|---:|---|---:|---:|---:|"]  # fmt: skip
        for r in ct2.values():
            res = r["result"]
            for precision in ("fp32", "int8"):
                x = res[precision]
                lines.append(f"| {res['threads']} | {precision} | {x['ours']['total_ms']} | {x['ct2']['total_ms']} | "
                             f"**{x['ratio_ours_over_ct2']}** | {x.get('ratios_per_run', '')} | "
                             f"{x['ours']['bleu']} | {x['ct2']['bleu']} | "
                             f"{x['identical_translations']}/{res['sentences']} |")  # fmt: skip
        res = next(iter(ct2.values()))["result"]
        lines += ["", f"Model: the `{res['baseline']}` homogeneous baseline; largest teacher-forced log-prob "
                  f"difference per token between the runtimes (fp32, 20 sentences) {res['max_logprob_diff_fp32']:.1e}. "
                  "The goal (1 thread): ours/CT2 <= 0.9 in fp32 and <= 1.0 in int8, the median of three interleaved "
                  "runs. "
                  "CTranslate2 cannot run the searched SubTransformers at all: per-layer FFN widths and heads, "
                  "encoder/decoder widths that differ, qkv width != embedding width, and decoder layers attending "
                  "to several encoder layers have no place in its `TransformerSpec`.", ""]  # fmt: skip
    if "http" in results and not results["http"]["failed"]:
        res = results["http"]["result"]
        o = res["overhead"]
        lines += ["## HTTP overhead and adaptive batching", "",
                  f"Entry `{o['entry']}`, {res['threads']} threads, {o['calls']} alternating calls: raw engine p50 "
                  f"{o['raw_p50_ms']} ms / p95 {o['raw_p95_ms']} ms; HTTP p50 {o['http_p50_ms']} ms / p95 "
                  f"{o['http_p95_ms']} ms; **overhead at p50 {100 * o['overhead_p50']:+.1f} %** (goal <= 10 %).", "",
                  "| clients | batching req/s | no batching req/s | gain |", "|---:|---:|---:|---:|"]  # fmt: skip
        t = res["throughput_rps"]
        for c in t["batching"]:
            lines.append(f"| {c} | {t['batching'][c]} | {t['no_batching'][c]} | {t['gain'][c]}x |")
        lines.append("")
    if "load" in results and not results["load"]["failed"]:
        res = results["load"]["result"]
        lines += ["## Load at the SLA", "", f"Open-loop client, {res['seconds_per_level']:g} s per level, "
                  f"{res['sentences']} Bible test sentences of 20-40 tokens, {res['threads']} threads, guard off, "
                  f"catalog profile `{res['catalog_profile']}`. The SLAs are the catalog p95 of the profile's "
                  f"median and slowest entries x {res.get('sla_scale', 1.25):g} (the catalog's p95 is the reference "
                  "workload's 30 decoder steps; these sentences decode longer).", ""]  # fmt: skip
        for s in res["sla"]:
            rate = s["max_rate_within_sla_rps"]
            held = (f"**{_fmt(rate)} req/s** ({_fmt(s['max_throughput_within_sla_rps'])} ok/s)" if rate is not None
                    else f"**none**: no level tried ({_fmt(min(lv['rate_rps'] for lv in s['levels']))} req/s and up) "
                    "kept p95 within the SLA with zero errors")  # fmt: skip
            lines += [f"**SLA {s['sla_ms']} ms** (serving `{s['selected']}`): max load with p95 within the SLA and "
                      f"zero errors: {held}.", "",
                      "| offered req/s | ok/s | p50 ms | p95 ms | p99 ms | errors | dropped |",
                      "|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
            for lv in s["levels"]:
                cells = [lv["throughput_rps"], lv["p50_ms"], lv["p95_ms"], lv["p99_ms"], lv["errors"], lv["dropped"]]
                lines.append(f"| {lv['rate_rps']:g} | " + " | ".join(_fmt(c) for c in cells) + " |")
            lines.append("")
        g = res["guard"]
        lines += [f"**SLA guard** (SLA {g['sla_ms']} ms): serving entry over time "
                  + ", ".join(f"{t['t_s']} s: `{t['selected']}`" for t in g["timeline"]) + ".", "",
                  "| phase | offered req/s | p95 ms | requests per model |", "|---|---:|---:|---|"]  # fmt: skip
        for ph in g["phases"]:
            lines.append(f"| {ph['phase']} | {ph['rate_rps']:g} | {_fmt(ph['p95_ms'])} | {ph['models']} |")
        lines += ["", "Switch counters: " + ("; ".join(f"`{m}`" for m in g["switch_metrics"]) or "none") + ".", ""]
    if "robustness" in results and not results["robustness"]["failed"]:
        res = results["robustness"]["result"]
        fz = res["fuzz"]
        k, c, b = res["kill_worker"], res["corrupted_artifact"], res["bad_catalogs"]
        lines += ["## Bad input at scale", "",
                  f"- schemathesis (OpenAPI, not-a-server-error): {fz['schemathesis']['test_cases']} test cases, "
                  f"statuses {fz['schemathesis']['statuses']}, exit code {fz['schemathesis']['exit_code']}.",
                  f"- hypothesis fuzz of `q`: {fz['hypothesis']['requests']} requests, statuses "
                  f"{fz['hypothesis']['statuses']}, server errors {len(fz['hypothesis']['server_errors'])}.",
                  f"- ready afterwards: {fz['ready_after']}.", "", "## Faults", "",
                  f"- Worker killed (SIGKILL) mid-load, 2 workers: {k['requests']} requests, {k['ok']} ok, "
                  f"{k['failed']} failed ({', '.join(k['error_kinds']) or 'none'}), {k['hung']} timed out; workers "
                  f"{k['workers_before']} -> {k['workers_after']}; ready after: {k['ready_after']}, a translation "
                  f"after: HTTP {k['translate_after']}.",
                  f"- Corrupted artifact (`{c['corrupted']}`): refused {c['refused']}, served `{c['served']}`, "
                  f"metric {c['refusal_metric']}, translation HTTP {c['translate_status']}.",
                  *(f"- Catalog {name}: exit code {o['exit_code']}, {o['stderr_lines']} stderr line(s): "
                    f"`{o['last_line']}`" for name, o in b.items()), ""]  # fmt: skip
    if "memory" in results and not results["memory"]["failed"]:
        res = results["memory"]["result"]
        lines += ["## Memory of a serving deployment", "",
                  f"`hat serve` on `{res['catalog']}` ({res['backend']}, host `{res['profile']}`, catalog profile "
                  f"`{res['catalog_profile']}`), after one request per SLA-guard rung: ladder "
                  f"{len(res['ladder'])} entries, {len(res['loaded'])} loaded, whole ladder loaded: "
                  f"{'yes' if res['whole_ladder_loaded'] else 'NO'}.", "",
                  "| process | RSS MB | USS MB | torch mapped | ONNX Runtime mapped |",
                  "|---|---:|---:|---|---|"]  # fmt: skip
        for row in res["processes"]:
            lines.append(f"| {row['role']} | {row['rss_mb']} | {row['uss_mb']} | {'yes' if row['torch'] else 'no'} "
                         f"| {'yes' if row['onnxruntime'] else 'no'} |")  # fmt: skip
        lines.append("")
    if "throughput" in results and not results["throughput"]["failed"]:
        res = results["throughput"]["result"]
        lines += ["## Throughput at the SLA on all cores", "",
                  f"{res['precision']}, the `{res['baseline']}` baseline, one sentence per request, beam 4, "
                  "closed-loop "
                  f"clients 1/2/4/8, {res['seconds']:g} s per level; best requests/s of a level with p95 <= "
                  f"{res['sla_ms']:g} ms, median of {res['rounds']} shuffled rounds. Ours: N worker processes x M "
                  "threads; CTranslate2: inter_threads x intra_threads.", "",
                  "| configuration | req/s within the SLA |", "|---|---:|"]  # fmt: skip
        for name, rps in sorted(res["summary_rps"].items()):
            lines.append(f"| {name} | {rps} |")
        lines += [
            "",
            f"Best ours `{res['best_ours']}` / best CTranslate2 `{res['best_ct2']}`: "
            f"**{_fmt(None if res['ours_over_ct2'] is None else round(res['ours_over_ct2'], 3))}**.",
            "",
        ]
    if "repeat-ban" in results and not results["repeat-ban"]["failed"]:
        res = results["repeat-ban"]["result"]
        lines += ["## The repeat ban's cost", "",
                  f"The reference workload with the served repeat ban (n = {res['no_repeat_ngram']}) and without it, "
                  f"{res['runs']} alternating runs, ONNX Runtime, 1 thread (`bench/repeat_ban.py`).", "",
                  "| entry | p50 with, ms | p50 without, ms | with / without |", "|---|---:|---:|---:|"]  # fmt: skip
        for r in res["results"]:
            lines.append(f"| `{r['entry']}` | {r['p50_with_ms']} | {r['p50_without_ms']} | **{r['ratio']:.3f}** |")
        lines.append("")
    lines += ["## Time", "", " | ".join(f"{name} {r['minutes']} min" for name, r in results.items()), ""]
    return "\n".join(lines)


def main() -> int:  # pragma: no cover - run by `make bench`
    from hat_engine.hardware import detect

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", help="comma-separated subset of: " + ", ".join(steps(False)))
    p.add_argument("--quick", action="store_true", help="short levels and small counts (a smoke run)")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "RESULTS.md")
    args = p.parse_args()
    todo = steps(args.quick)
    if args.only:
        unknown = set(args.only.split(",")) - set(todo)
        if unknown:
            raise SystemExit(f"bench: unknown step(s) {sorted(unknown)}; use {', '.join(todo)}")
        todo = {k: v for k, v in todo.items() if k in args.only.split(",")}
    results = {}
    for name, argv in steps(args.quick).items():
        if name in todo:
            results[name] = run(name, argv)
        elif args.only and (record := earlier(name)) is not None:
            results[name] = record
    fingerprint = detect("onnxruntime").to_dict()
    args.out.write_text(render(results, fingerprint))
    print(f"wrote {args.out}")
    return 1 if any(results[name]["failed"] for name in todo) else 0


if __name__ == "__main__":
    raise SystemExit(main())
