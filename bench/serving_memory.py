"""Memory of a serving deployment: RSS and USS per process of a real `hat serve`, with the SLA guard's whole
ladder loaded.

The server starts on a catalog with HAT_MAX_LOADED large enough for every entry of this host's profile; one
request per ladder rung (`max_latency_ms` = that rung's p95 on this host) loads each rung, and `/models` must
then list the whole ladder as loaded. For each process of the server's tree (the BentoML arbiter, its workers)
the benchmark prints RSS, USS (memory no other process shares) and whether torch / ONNX Runtime are mapped.

    .venv/bin/python bench/serving_memory.py [--catalog catalog/] [--sla-ms N] [--backend onnxruntime] [--json F]

The result is this host's (`hat detect`); memory hardly depends on load, but measure on a quiet machine anyway.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import httpx
import psutil

from harness.server import Server, server_env
from hat_engine.catalog.schema import load_catalog

REPO = Path(__file__).resolve().parents[1]
MB = 1024 * 1024


def _maps(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return ""


def measure(catalog: Path, sla_ms: float | None, backend: str, home: Path) -> dict:
    entries = len(load_catalog(catalog).entries)
    extra = {"HAT_MAX_LOADED": str(entries), "HAT_BACKEND": backend}
    if sla_ms is not None:
        extra["HAT_SLA_MS"] = str(sla_ms)
    server = Server(server_env(catalog, home, **extra), home / "server.log").wait_ready(timeout=900)
    try:  # a fresh cache builds every entry first: allow minutes
        models = httpx.get(server.url + "/models", timeout=30).json()
        ladder = models["sla_guard"]["ladder"] if models["sla_guard"] else [models["selected"]["entry_id"]]
        p95 = {row["id"]: row["host_latency_ms"]["p95"] for row in models["entries"] if "host_latency_ms" in row}
        for entry_id in ladder:
            budget = p95[entry_id] + 0.01  # /models rounds p95 to 3 decimals: a hair above, or a slower rung is missed
            body = {"q": "The house is small.", "source": "en", "target": "de", "max_latency_ms": budget}
            r = httpx.post(server.url + "/translate", json=body, timeout=120)
            r.raise_for_status()
        loaded = httpx.get(server.url + "/models", timeout=30).json()["loaded"]
        root = psutil.Process(server.proc.pid)
        rows = []
        for process in [root, *root.children(recursive=True)]:
            info, maps = process.memory_full_info(), _maps(process.pid)
            role = "arbiter" if process.pid == root.pid else ("worker" if "onnxruntime" in maps or
                                                               "libtorch" in maps else "helper")  # fmt: skip
            rows.append({"pid": process.pid, "role": role, "rss_mb": round(info.rss / MB, 1),
                         "uss_mb": round(info.uss / MB, 1), "torch": "libtorch" in maps,
                         "onnxruntime": "onnxruntime" in maps, "cmd": " ".join(process.cmdline()[:6])})  # fmt: skip
    finally:
        server.stop()
    return {"catalog": str(catalog), "backend": backend, "profile": models["hardware_profile"],
            "catalog_profile": models["catalog_profile"], "ladder": ladder, "loaded": loaded,
            "whole_ladder_loaded": set(ladder) <= set(loaded), "processes": rows}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", type=Path, default=REPO / "catalog")
    parser.add_argument("--sla-ms", type=float, default=None, help="HAT_SLA_MS (default: none, the best entry)")
    parser.add_argument("--backend", default="onnxruntime", choices=["onnxruntime", "torch"])
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hat-memory-") as tmp:
        result = measure(args.catalog.resolve(), args.sla_ms, args.backend, Path(tmp))
    print(f"host {result['profile']} (catalog profile {result['catalog_profile']}), backend {result['backend']}")
    print(f"ladder {len(result['ladder'])} entries, loaded {len(result['loaded'])}: whole ladder loaded "
          f"{'yes' if result['whole_ladder_loaded'] else 'NO'}")  # fmt: skip
    print(f"{'pid':>8} {'role':8} {'RSS MB':>8} {'USS MB':>8} {'torch':>6} {'ORT':>4}  command")
    for row in result["processes"]:
        torch, ort = ("yes" if row[key] else "no" for key in ("torch", "onnxruntime"))
        memory = f"{row['rss_mb']:>8.1f} {row['uss_mb']:>8.1f}"
        print(f"{row['pid']:>8} {row['role']:8} {memory} {torch:>6} {ort:>4}  {row['cmd']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["whole_ladder_loaded"] else 1


if __name__ == "__main__":
    sys.exit(main())
