"""Load at the SLA, and the SLA guard under overload: a bounded open-loop client against a real server.

1. For each SLA setting (default: two, taken from the catalog's measured p95s on this host's profile), a server
   with the guard off (the model fixed, so each level measures one model) gets open-loop load at rising rates,
   `--seconds` per level: throughput, p50/p95/p99 of client-side latency, errors. The highest rate whose p95 stays
   within the SLA with zero errors is the "max load at SLA". Requests are Bible test sentences close to the
   reference workload's 30 source tokens.
2. The guard, at the SLA under which the most load was sustained: a server with the guard on gets light load
   (half that rate), then overload (4x), then light load again; `/models` is
   polled to record which entry serves, and the switch counter is read from `/metrics`. It should step down
   under overload and back up after.

Every request loop is bounded in count and time, on loopback only.

    .venv/bin/python bench/load_sla.py [--catalog catalog] [--seconds 60] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import httpx

from harness.load import MAX_IN_FLIGHT, TIMEOUT_S, open_loop, reference_like_sentences
from harness.server import Server, server_env
from hat_engine.catalog.schema import load_catalog
from hat_engine.hardware import detect
from hat_engine.serving.selection import nearest_profile

REPO = Path(__file__).resolve().parents[1]


def sla_levels(catalog_dir: Path, threads: int, scale: float = 1.6) -> tuple[str, list[float]]:
    """This host's catalog profile and two SLAs from its measured p95s: the median entry's, and the slowest's, times
    `scale`. The catalog's p95 is the reference workload's (30 source tokens, exactly 30 decoder steps); the
    benchmark's real sentences decode longer: at 1.25x no load level met the SLA (p95 ~1.5-1.7x the catalog's
    at 0.5 req/s, 2026-11-29)."""
    catalog = load_catalog(catalog_dir)
    host = detect("onnxruntime", threads).profile_id
    ids = sorted({e.hardware_profile for e in catalog.entries})
    profile = host if host in ids else nearest_profile(ids, host)
    p95s = sorted(e.p95 for e in catalog.entries_for(profile))
    return profile, [round(p95s[len(p95s) // 2] * scale, 1), round(p95s[-1] * scale, 1)]


def load_levels(catalog: Path, home: Path, sla_ms: float, threads: int, seconds: float, sentences: list[str],
                rates: list[float]) -> dict:  # fmt: skip
    env = server_env(catalog, home / f"sla{sla_ms:g}", HAT_THREADS=str(threads), HAT_SLA_MS=str(sla_ms),
                     HAT_SLA_GUARD="off")  # fmt: skip
    levels = []
    with Server(env, home / f"sla{sla_ms:g}.log") as server:
        selected = httpx.get(server.url + "/models", timeout=10).json()["active"]
        asyncio.run(open_loop(server.url, 2.0, 3.0, sentences))  # warm-up
        for rate in rates:
            level = asyncio.run(open_loop(server.url, rate, seconds, sentences))
            levels.append(level)
            print(f"SLA {sla_ms:g} ms | {rate:g} req/s: {level['throughput_rps']} ok/s, p50 {level['p50_ms']} "
                  f"p95 {level['p95_ms']} p99 {level['p99_ms']} ms, errors {level['errors']}, dropped "
                  f"{level['dropped']}", flush=True)  # fmt: skip
            if level["p95_ms"] is None or level["p95_ms"] > 4 * sla_ms or level["errors"]:
                break  # far past saturation: higher rates only queue more
    within = [lv for lv in levels if lv["p95_ms"] is not None and lv["p95_ms"] <= sla_ms and not lv["errors"]
              and not lv["dropped"]]  # fmt: skip
    best = max(within, key=lambda lv: lv["rate_rps"]) if within else None
    return {"sla_ms": sla_ms, "selected": selected, "levels": levels,
            "max_rate_within_sla_rps": best["rate_rps"] if best else None,
            "max_throughput_within_sla_rps": best["throughput_rps"] if best else None}  # fmt: skip


def guard_scenario(catalog: Path, home: Path, sla_ms: float, threads: int, sentences: list[str],
                   light_rps: float, heavy_rps: float, phases_s: tuple[float, float, float]) -> dict:  # fmt: skip
    """Light, overload, light; the serving entry polled every second."""
    env = server_env(catalog, home / "guard", HAT_THREADS=str(threads), HAT_SLA_MS=str(sla_ms), HAT_SLA_GUARD="on")
    timeline: list[dict] = []
    with Server(env, home / "guard.log") as server:
        t0 = time.perf_counter()

        async def poll(stop: asyncio.Event) -> None:
            async with httpx.AsyncClient(timeout=10) as client:
                while not stop.is_set():
                    try:
                        selected = (await client.get(server.url + "/models")).json()["active"]
                        if not timeline or timeline[-1]["selected"] != selected:
                            timeline.append({"t_s": round(time.perf_counter() - t0, 1), "selected": selected})
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(1.0)

        async def run() -> list[dict]:
            stop = asyncio.Event()
            poller = asyncio.create_task(poll(stop))
            results = []
            for name, rate, seconds in (("light", light_rps, phases_s[0]), ("overload", heavy_rps, phases_s[1]),
                                        ("light again", light_rps, phases_s[2])):  # fmt: skip
                level = await open_loop(server.url, rate, seconds, sentences)
                results.append({"phase": name, **level})
                print(f"guard | {name} {rate:g} req/s: p95 {level['p95_ms']} ms, models {level['models']}", flush=True)
            stop.set()
            await poller
            return results

        phases = asyncio.run(run())
        metrics = httpx.get(server.url + "/metrics", timeout=10).text
    switches = [line for line in metrics.splitlines() if line.startswith("hat_model_switches_total")]
    return {"sla_ms": sla_ms, "phases": phases, "timeline": timeline, "switch_metrics": switches}


def main() -> int:  # pragma: no cover - a benchmark, run by `make bench`
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--catalog", type=Path, default=REPO / "catalog")
    p.add_argument("--data", type=Path, default=REPO / "data")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=60.0, help="per load level (default 60)")
    p.add_argument("--rates", default="0.5,1,2,3,4,6,8", help="requests/s levels, ascending")
    p.add_argument("--sla-scale", type=float, default=1.6, help="SLA = catalog p95 x this (default 1.6)")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    rates = [float(x) for x in args.rates.split(",")]
    sentences = reference_like_sentences(args.data, args.catalog)
    profile, slas = sla_levels(args.catalog, args.threads, args.sla_scale)
    result = {"host": detect("onnxruntime", args.threads).profile_id, "catalog_profile": profile,
              "threads": args.threads, "seconds_per_level": args.seconds, "sla_scale": args.sla_scale,
              "sentences": len(sentences),
              "max_in_flight": MAX_IN_FLIGHT, "timeout_s": TIMEOUT_S, "sla": []}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        for sla in slas:
            result["sla"].append(load_levels(args.catalog, home, sla, args.threads, args.seconds, sentences, rates))
        # The guard runs at the SLA this host sustains most load under: below what it sustains it has headroom to
        # step back up. At an SLA no level met (p95 over it even at the lightest load), the guard steps down and,
        # rightly, never up: that run showed only the first half.
        chosen = max(result["sla"], key=lambda r: (r["max_rate_within_sla_rps"] or 0.0, -r["sla_ms"]))
        sustainable = chosen["max_rate_within_sla_rps"] or rates[0]
        result["guard"] = guard_scenario(args.catalog, home, chosen["sla_ms"], args.threads, sentences,
                                         light_rps=max(0.2, sustainable / 2), heavy_rps=sustainable * 4,
                                         phases_s=(20.0, 45.0, 150.0))  # fmt: skip
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
