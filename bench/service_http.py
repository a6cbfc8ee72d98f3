"""The service's cost and its batching gain, as ratios measured side by side in one run.

1. HTTP overhead: the same sentence through `POST /translate` on a real BentoML server vs the raw engine call
   (`ServingEngine.translate`, same catalog entry, same threads) in this process; calls alternate one by one so
   machine noise hits both alike; p50 of each and their ratio.
2. Adaptive batching: throughput (requests/s) of C concurrent clients (1, 4, 8, 16) against a server with
   batching (HAT_MAX_BATCH=32) and one without (HAT_MAX_BATCH=1); the ratio is the gain.

    .venv/bin/python bench/service_http.py [--catalog catalog/] [--threads 1] [--requests 40] [--clients 1,4,8,16]

Without --catalog and no shipped catalog, a fixture catalog (tiny random models) is built in a temp folder: the
ratios then show the service's fixed costs against a very small model, an upper bound on the overhead.
"""

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import torch

from harness.fixture_catalog import build_fixture_catalog
from harness.server import Server, server_env
from hat_engine.hardware import detect
from hat_engine.latency.timing import stats
from hat_engine.serving.engine import ServingEngine, ServingSettings

REPO = Path(__file__).resolve().parents[1]

SENTENCE = "The house is small, but the garden behind it is big and full of old trees."


def overhead(catalog: Path, home: Path, threads: int, n: int) -> dict:
    """p50/p95 of the raw engine call and of the HTTP call for the same sentence, alternating calls."""
    torch.set_num_threads(threads)
    settings = ServingSettings(catalog, home / "raw-cache", guard=None)
    engine = ServingEngine(settings, detect("onnxruntime", threads))
    engine.start()
    entry = engine.active_id
    raw, http = [], []
    env = server_env(catalog, home / "http", HAT_THREADS=str(threads), HAT_SLA_GUARD="off")
    with Server(env, home / "http.log") as server, httpx.Client(timeout=60) as client:
        body = {"q": SENTENCE, "source": "en", "target": "de"}
        for _ in range(3):  # warm both paths
            engine.translate(entry, [SENTENCE])
            client.post(server.url + "/translate", json=body)
        for _ in range(n):
            t0 = time.perf_counter()
            engine.translate(entry, [SENTENCE])
            raw.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            r = client.post(server.url + "/translate", json=body)
            http.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200 and r.json()["model"] == entry, r.text
    r, h = stats(raw), stats(http)  # the same p50/p95 as every latency figure of the catalog
    return {"entry": entry, "calls": n, "raw_p50_ms": round(r.p50, 2), "raw_p95_ms": round(r.p95, 2),
            "http_p50_ms": round(h.p50, 2), "http_p95_ms": round(h.p95, 2),
            "overhead_p50": round(h.p50 / r.p50 - 1, 4)}  # fmt: skip


def throughput(catalog: Path, home: Path, threads: int, max_batch: int, levels: list[int], per_client: int) -> dict:
    """Requests per second of C concurrent clients (each sending `per_client` requests), for each C in `levels`,
    against one server with HAT_MAX_BATCH=max_batch."""
    env = server_env(catalog, home / f"batch{max_batch}", HAT_THREADS=str(threads), HAT_MAX_BATCH=str(max_batch),
                     HAT_SLA_GUARD="off")  # fmt: skip
    out = {}
    with Server(env, home / f"batch{max_batch}.log") as server:
        with httpx.Client(timeout=60) as warm:
            warm.post(server.url + "/translate", json={"q": SENTENCE, "source": "en", "target": "de"})
        for clients in levels:
            errors: list[str] = []

            def client_loop(i: int, errors=errors) -> None:
                with httpx.Client(timeout=120) as client:
                    for j in range(per_client):
                        r = client.post(server.url + "/translate", json={"q": f"{SENTENCE} ({i}.{j})",
                                                                         "source": "en", "target": "de"})  # fmt: skip
                        if r.status_code != 200:
                            errors.append(r.text)

            workers = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
            t0 = time.perf_counter()
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            seconds = time.perf_counter() - t0
            if errors:
                raise SystemExit(f"{len(errors)} failed requests, e.g. {errors[0][:200]}")
            out[clients] = round(clients * per_client / seconds, 3)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--catalog", type=Path, help="catalog folder (default: catalog/ if it exists, else a fixture)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--requests", type=int, default=40, help="alternating calls for the overhead p50s")
    p.add_argument("--clients", default="1,4,8,16", help="concurrent client levels")
    p.add_argument("--per-client", type=int, default=6)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    levels = [int(x) for x in args.clients.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        catalog = args.catalog or (REPO / "catalog" if (REPO / "catalog" / "catalog.json").is_file() else None)
        if catalog is None:
            catalog = home / "fixture-catalog"
            build_fixture_catalog(catalog, threads=args.threads)
            print("catalog: fixture (tiny random models; see --help)")
        result = {"host": detect("onnxruntime", args.threads).profile_id, "threads": args.threads,
                  "overhead": overhead(catalog, home, args.threads, args.requests)}  # fmt: skip
        o = result["overhead"]
        print(f"host {result['host']}, entry {o['entry']}, {args.requests} calls each")
        print(f"raw engine p50 {o['raw_p50_ms']} p95 {o['raw_p95_ms']} ms | HTTP p50 {o['http_p50_ms']} p95 "
              f"{o['http_p95_ms']} ms | overhead at p50 {100 * o['overhead_p50']:+.1f} %")  # fmt: skip
        on = throughput(catalog, home, args.threads, 32, levels, args.per_client)
        off = throughput(catalog, home, args.threads, 1, levels, args.per_client)
        result["throughput_rps"] = {"batching": on, "no_batching": off,
                                    "gain": {c: round(on[c] / off[c], 3) for c in levels}}  # fmt: skip
        for c in levels:
            print(f"{c:>2} clients: batching {on[c]:.2f} req/s | no batching {off[c]:.2f} req/s | "
                  f"gain {on[c] / off[c]:.2f}x")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
