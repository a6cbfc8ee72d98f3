"""A real Prometheus for the tests: Debian's package fetched with `apt-get download` into a cache folder and
unpacked with `dpkg-deb -x` (no root, no install), started on a free loopback port with a given config."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness.server import free_port, wait_http_ready

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hat-serving-tests" / "prometheus"


def prometheus_binary() -> Path:
    """The cached binary, fetched on first use; a skip (a failure under HAT_REQUIRE_REAL=1) without apt."""
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


@contextmanager
def running_prometheus(config_yaml: str, folder: Path) -> Iterator[str]:
    """Prometheus with `config_yaml`, its data and log (`prometheus.log`) in `folder`; yields its base URL."""
    binary, port = prometheus_binary(), free_port()
    config = folder / "prometheus.yml"
    config.write_text(config_yaml)
    with open(folder / "prometheus.log", "wb") as log:
        args = [f"--config.file={config}", f"--storage.tsdb.path={folder / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}"]  # fmt: skip
        proc = subprocess.Popen([str(binary), *args], stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            # before it is ready its query API answers 503 (a slow host's first query met that)
            wait_http_ready(url + "/-/ready", proc, lambda: (folder / "prometheus.log").read_text()[-2000:],
                            "Prometheus", timeout=60)  # fmt: skip
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=20)
