"""A real Prometheus scrapes the service's `/metrics` (two BentoML workers, so the multi-process metrics must sum).

Prometheus comes from the Debian package `prometheus`, fetched with `apt-get download` into a cache folder and
unpacked with `dpkg-deb -x` (no root, no install); the test is skipped, with the reason, only when apt cannot
provide it.
"""

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.fixtures_catalog import build_fixture_catalog
from tests.service_server import Server, free_port, server_env

pytestmark = pytest.mark.integration

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hat-serving-tests" / "prometheus"


def prometheus_binary() -> Path:
    binary = CACHE / "root" / "usr" / "bin" / "prometheus"
    if binary.is_file():
        return binary
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        pytest.skip("Prometheus is fetched with apt-get download + dpkg-deb, and this host has no apt")
    CACHE.mkdir(parents=True, exist_ok=True)
    got = subprocess.run(["apt-get", "download", "prometheus"], cwd=CACHE, capture_output=True, text=True, timeout=300)
    debs = sorted(CACHE.glob("prometheus_*.deb"))
    if got.returncode != 0 or not debs:
        pytest.skip(f"apt-get download prometheus failed: {got.stderr.strip().splitlines()[-1:]}")
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(CACHE / "root")], check=True, timeout=120)
    return binary


def query(prom_url: str, promql: str) -> float | None:
    r = httpx.get(prom_url + "/api/v1/query", params={"query": promql}, timeout=10)
    result = r.json()["data"]["result"]
    return sum(float(s["value"][1]) for s in result) if result else None


def test_prometheus_scrapes_the_latency_histogram_from_two_workers(tmp_path):
    binary = prometheus_binary()
    catalog = tmp_path / "catalog"
    build_fixture_catalog(catalog, fake_p95_ms=[10.0, 20.0, 30.0, 40.0])
    with Server(server_env(catalog, tmp_path), tmp_path / "server.log", workers=2) as server:
        n = 12
        for i in range(n):
            r = httpx.post(server.url + "/translate", json={"q": f"The house {i} is small.", "source": "en",
                                                            "target": "de"}, timeout=60)  # fmt: skip
            assert r.status_code == 200, r.text
        text = httpx.get(server.url + "/metrics", timeout=10).text
        counts = re.findall(r"^hat_translation_latency_seconds_count\{[^}]*\} (\S+)$", text, re.M)
        assert sum(float(c) for c in counts) == n  # both workers' requests, summed exactly once
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: hat\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{server.port}']\n"
        )
        log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115
        args = [f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}"]  # fmt: skip
        prom = subprocess.Popen([str(binary), *args], stdout=log, stderr=subprocess.STDOUT)
        try:
            value, deadline = None, time.monotonic() + 40
            while time.monotonic() < deadline and not value:
                time.sleep(1)
                try:
                    value = query(f"http://127.0.0.1:{port}", "hat_translation_latency_seconds_count")
                except (httpx.HTTPError, KeyError, ValueError):
                    value = None
            assert value == n, (tmp_path / "prometheus.log").read_text()[-2000:]
            assert query(f"http://127.0.0.1:{port}", 'up{job="hat"}') == 1
        finally:
            prom.terminate()
            prom.wait(timeout=20)
            log.close()
