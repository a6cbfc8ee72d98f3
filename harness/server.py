"""A real BentoML server for the integration tests: `hat serve` on a free loopback port, stopped by its PID.

`hat serve` checks the settings and then execs `bentoml serve`, so the PID we start is the BentoML arbiter; it
runs in its own session so that stopping it also stops the workers it forked (its process group, which only
this helper created).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

HAT = [sys.executable, "-m", "search_jobs.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(catalog: Path, home: Path, **extra: str) -> dict[str, str]:
    """A clean environment: one thread, caches and BentoML's home (metrics dir) private to this server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HAT_", "BENTOML_"))}
    env.update(BENTOML_DO_NOT_TRACK="true", BENTOML_HOME=str(home / "bentoml"), HAT_CATALOG=str(catalog),
               HAT_THREADS="1", HAT_CACHE_DIR=str(home / "cache"), OMP_NUM_THREADS="1")  # fmt: skip
    env.update(extra)
    return env


def wait_http_ready(url: str, proc: subprocess.Popen, log_tail: Callable[[], str], what: str,
                    timeout: float = 90.0) -> None:  # fmt: skip
    """Until `url` answers 200, while `proc` (what serves it) runs: RuntimeError with the log's tail when it exits
    first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log_tail()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{what} not ready after {timeout}s:\n{log_tail()}")


class Server:
    def __init__(self, env: dict[str, str], log_path: Path, workers: int = 1):
        self.port, self.log_path = free_port(), log_path
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        cmd = [*HAT, "serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers)]
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def log_tail(self, n: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]

    def wait_ready(self, timeout: float = 90.0) -> Server:
        try:
            wait_http_ready(self.url + "/readyz", self.proc, self.log_tail, "server", timeout)
        except RuntimeError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        else:  # the arbiter is gone; make sure no worker of its group outlives it
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._log.close()

    def __enter__(self) -> Server:
        return self.wait_ready()

    def __exit__(self, *exc) -> None:
        self.stop()
