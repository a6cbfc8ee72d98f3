"""A real Prometheus scrapes the service's `/metrics` (two BentoML workers, so the multi-process metrics must sum).

Prometheus is Debian's package, fetched and started by tests/prometheus.py.
"""

import re
import time

import httpx
import pytest

from harness.fixture_catalog import build_fixture_catalog
from harness.server import Server, server_env
from tests.prometheus import prometheus_binary, running_prometheus

pytestmark = pytest.mark.integration


def query(prom_url: str, promql: str) -> float | None:
    r = httpx.get(prom_url + "/api/v1/query", params={"query": promql}, timeout=10)
    result = r.json()["data"]["result"]
    return sum(float(s["value"][1]) for s in result) if result else None


def test_prometheus_scrapes_the_latency_histogram_from_two_workers(tmp_path):
    prometheus_binary()  # fetched before the server starts
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
        config = ("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: hat\n    static_configs:\n"
                  f"      - targets: ['127.0.0.1:{server.port}']\n")  # fmt: skip
        with running_prometheus(config, tmp_path) as prom:
            value, deadline = None, time.monotonic() + 40
            while time.monotonic() < deadline and not value:
                time.sleep(1)
                try:
                    value = query(prom, "hat_translation_latency_seconds_count")
                except (httpx.HTTPError, KeyError, ValueError):
                    value = None
            assert value == n, (tmp_path / "prometheus.log").read_text()[-2000:]
            assert query(prom, 'up{job="hat"}') == 1
