"""The service's cost and its batching gain, as ratios measured side by side in one run.

1. HTTP overhead: the same sentence through `POST /translate` on a real BentoML server vs the raw engine call
   (`ServingEngine.translate`, same catalog entry, same threads) in this process; calls alternate one by one so
   machine noise hits both alike; p50 of each and their ratio.
2. Adaptive batching: throughput (requests/s) of C concurrent clients (default 8) against a server with
   batching (HAT_MAX_BATCH=32) and one without (HAT_MAX_BATCH=1); the ratio is the gain.

    .venv/bin/python bench/service_http.py [--catalog catalog/] [--threads 1] [--requests 40] [--clients 8]

Without --catalog and no shipped catalog, a fixture catalog (tiny random models) is built in a temp folder: the
ratios then show the service's fixed costs against a very small model, an upper bound on the overhead.
"""

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the test helpers: a real server on a free port, the fixture catalog

from hat_engine.hardware import detect  # noqa: E402
from hat_engine.serving_engine import ServingEngine, ServingSettings  # noqa: E402
from tests.fixtures_catalog import build_fixture_catalog  # noqa: E402
from tests.service_server import Server, server_env  # noqa: E402

SENTENCE = "The house is small, but the garden behind it is big and full of old trees."


def overhead(catalog: Path, home: Path, threads: int, n: int) -> tuple[float, float, str]:
    """(p50 raw engine ms, p50 HTTP ms, entry) for the same sentence, alternating calls."""
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
    return statistics.median(raw), statistics.median(http), entry


def throughput(catalog: Path, home: Path, threads: int, max_batch: int, clients: int, per_client: int) -> float:
    """Requests per second of `clients` concurrent clients, each sending `per_client` requests."""
    env = server_env(catalog, home / f"batch{max_batch}", HAT_THREADS=str(threads), HAT_MAX_BATCH=str(max_batch),
                     HAT_SLA_GUARD="off")  # fmt: skip
    errors: list[str] = []
    with Server(env, home / f"batch{max_batch}.log") as server:

        def client_loop(i: int) -> None:
            with httpx.Client(timeout=120) as client:
                for j in range(per_client):
                    r = client.post(server.url + "/translate", json={"q": f"{SENTENCE} ({i}.{j})", "source": "en",
                                                                     "target": "de"})  # fmt: skip
                    if r.status_code != 200:
                        errors.append(r.text)

        with httpx.Client(timeout=60) as warm:
            warm.post(server.url + "/translate", json={"q": SENTENCE, "source": "en", "target": "de"})
        workers = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
        t0 = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        seconds = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"{len(errors)} failed requests, e.g. {errors[0][:200]}")
    return clients * per_client / seconds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--catalog", type=Path, help="catalog folder (default: catalog/ if it exists, else a fixture)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--requests", type=int, default=40, help="alternating calls for the overhead p50s")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--per-client", type=int, default=10)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        catalog = args.catalog or (REPO / "catalog" if (REPO / "catalog" / "catalog.json").is_file() else None)
        if catalog is None:
            catalog = home / "fixture-catalog"
            build_fixture_catalog(catalog, threads=args.threads)
            print("catalog: fixture (tiny random models; see --help)")
        raw, http, entry = overhead(catalog, home, args.threads, args.requests)
        print(f"host {detect('onnxruntime', args.threads).profile_id}, entry {entry}, {args.requests} calls each")
        print(f"p50 raw engine {raw:.2f} ms | HTTP {http:.2f} ms | HTTP/raw {http / raw:.3f}x "
              f"(overhead {100 * (http / raw - 1):+.1f} %)")  # fmt: skip
        on = throughput(catalog, home, args.threads, 32, args.clients, args.per_client)
        off = throughput(catalog, home, args.threads, 1, args.clients, args.per_client)
        print(f"{args.clients} clients: batching {on:.1f} req/s | no batching {off:.1f} req/s | gain {on / off:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
