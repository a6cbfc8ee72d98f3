"""Bad input at scale and faults, as scripted scenarios against real servers; outcomes as JSON for RESULTS.md.

1. Fuzz: schemathesis over the OpenAPI and the hypothesis fuzz of `q` (bench/fuzz.py) with large counts: zero
   5xx expected, and the service ready afterwards.
2. A BentoML worker killed (SIGKILL) mid-load, two workers: failed requests, whether any request hung past the
   client timeout, whether the worker came back.
3. A corrupted artifact on disk (fixture catalog whose best entry's weights no longer match their sha256): the
   entry is refused, the next one served, the refusal counted in /metrics.
4. Catalog missing, or schema-invalid: `hat serve` exits non-zero with one clear line.

    .venv/bin/python bench/robustness.py [--catalog catalog] [--fuzz-examples 1000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from harness.faults import kill_worker_mid_load
from harness.fixture_catalog import build_fixture_catalog
from harness.fuzz import hypothesis_fuzz, schemathesis_run
from harness.load import reference_like_sentences
from harness.server import HAT, Server, server_env

REPO = Path(__file__).resolve().parents[1]


def fuzz(catalog: Path, home: Path, examples: int) -> dict:
    with Server(server_env(catalog, home / "fuzz"), home / "fuzz.log") as server:
        st = schemathesis_run(server.url, max_examples=max(10, examples // 10), seed=1, workdir=home / "st",
                              max_time_s=180)  # fmt: skip
        hy = hypothesis_fuzz(server.url, examples=examples, seed=2)
        ready = httpx.get(server.url + "/readyz", timeout=10).status_code == 200
    st.pop("output_tail", None)
    return {"schemathesis": st, "hypothesis": hy, "ready_after": ready}


def corrupted_artifact(home: Path) -> dict:
    clean = build_fixture_catalog(home / "clean-catalog", fake_p95_ms=[5.0, 10.0, 20.0, 40.0])
    best = max(clean.entries, key=lambda e: e.mean_bleu).id
    build_fixture_catalog(home / "corrupt-catalog", corrupt="source", fake_p95_ms=[5.0, 10.0, 20.0, 40.0])
    with Server(server_env(home / "corrupt-catalog", home / "corrupt"), home / "corrupt.log") as server:
        models = httpx.get(server.url + "/models", timeout=10).json()
        metrics = httpx.get(server.url + "/metrics", timeout=10).text
        r = httpx.post(server.url + "/translate", json={"q": "The house is small.", "source": "en", "target": "de"},
                       timeout=60)  # fmt: skip
    refused = [row["id"] for row in models["entries"] if row["status"] == "refused"]
    counted = [line for line in metrics.splitlines() if line.startswith("hat_refused_artifacts_total")]
    return {"corrupted": best, "refused": refused, "served": models["active"], "refusal_metric": counted,
            "translate_status": r.status_code}  # fmt: skip


def bad_catalogs(home: Path) -> dict:
    invalid = home / "invalid-catalog"
    invalid.mkdir()
    (invalid / "catalog.json").write_text(json.dumps({"schema_version": 1, "language_pair": "en-de"}))
    outcomes = {}
    for name, folder in (("missing", home / "no-such-catalog"), ("schema-invalid", invalid)):
        env = server_env(folder, home / name)
        started = time.perf_counter()
        result = subprocess.run([*HAT, "serve", "--port", "1"], env=env, capture_output=True, text=True, timeout=120)
        lines = result.stderr.strip().splitlines()
        seconds = round(time.perf_counter() - started, 1)
        outcomes[name] = {"exit_code": result.returncode, "stderr_lines": len(lines),
                          "last_line": lines[-1] if lines else "", "seconds": seconds}  # fmt: skip
    return outcomes


def main() -> int:  # pragma: no cover - a benchmark, run by `make bench`
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--catalog", type=Path, default=REPO / "catalog")
    p.add_argument("--data", type=Path, default=REPO / "data")
    p.add_argument("--fuzz-examples", type=int, default=1000)
    p.add_argument("--kill-rate", type=float, default=2.0, help="requests/s while a worker is killed")
    p.add_argument("--kill-seconds", type=float, default=40.0)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        result["fuzz"] = fuzz(args.catalog, home, args.fuzz_examples)
        print("fuzz:", json.dumps({k: v for k, v in result["fuzz"].items()}, default=str)[:600], flush=True)
        sentences = reference_like_sentences(args.data, args.catalog)
        result["kill_worker"] = kill_worker_mid_load(args.catalog, home, sentences, args.kill_rate, args.kill_seconds)
        print("kill worker:", result["kill_worker"], flush=True)
        result["corrupted_artifact"] = corrupted_artifact(home)
        print("corrupted artifact:", result["corrupted_artifact"], flush=True)
        result["bad_catalogs"] = bad_catalogs(home)
        print("bad catalogs:", result["bad_catalogs"], flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
