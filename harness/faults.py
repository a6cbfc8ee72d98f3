"""Faults injected into a real server: a worker killed with SIGKILL in the middle of open-loop load."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import psutil

from harness.load import open_loop
from harness.server import Server, server_env


def _workers(arbiter_pid: int) -> list[psutil.Process]:
    """The server's live worker processes (a killed one not yet reaped is a zombie: not a worker any more)."""
    workers = []
    for p in psutil.Process(arbiter_pid).children(recursive=True):
        try:
            if any("worker" in part for part in p.cmdline()):
                workers.append(p)
        except (psutil.ZombieProcess, psutil.NoSuchProcess):
            continue
    return workers


def kill_worker_mid_load(catalog: Path, home: Path, sentences: list[str], rate: float, seconds: float) -> dict:
    env = server_env(catalog, home / "kill", HAT_WORKERS="2", HAT_THREADS="1")
    with Server(env, home / "kill.log", workers=2) as server:
        before = _workers(server.proc.pid)
        victim = before[0].pid if before else None

        async def run() -> dict:
            load = asyncio.create_task(open_loop(server.url, rate, seconds, sentences))
            await asyncio.sleep(seconds / 4)
            if victim is not None:
                os.kill(victim, signal.SIGKILL)
            return await load

        started = time.perf_counter()
        level = asyncio.run(run())
        wall = time.perf_counter() - started
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(_workers(server.proc.pid)) < len(before):
            time.sleep(1)
        after = _workers(server.proc.pid)
        ready = httpx.get(server.url + "/readyz", timeout=10).status_code == 200
        r = httpx.post(server.url + "/translate", json={"q": sentences[0], "source": "en", "target": "de"}, timeout=60)
    return {"workers_before": len(before), "killed_pid": victim, "workers_after": len(after),
            "requests": level["sent"], "ok": level["ok"], "failed": level["errors"],
            "error_kinds": level["error_kinds"],
            "hung": level["timeouts"], "wall_s": round(wall, 1),
            "load_seconds": seconds, "ready_after": ready, "translate_after": r.status_code}  # fmt: skip
