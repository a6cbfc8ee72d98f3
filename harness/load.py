"""Open-loop load against a real server: requests at a fixed rate, client-side latency, queueing included."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import httpx

MAX_IN_FLIGHT = 64
TIMEOUT_S = 30.0


def reference_like_sentences(data: Path, catalog: Path, n: int = 100) -> list[str]:
    """Bible test sentences of 20-40 tokens (the reference workload is 30): the first `n` of them."""
    from hat_engine.data.tokenizer import Tokenizer
    from hat_engine.train.evaluation import test_sets

    tokenizer = Tokenizer(catalog / "spm.model")
    src, _ = test_sets(data)["bible_test"]
    picked = [s for s in src if 20 <= len(tokenizer.encode(s)) <= 40]
    if not picked:
        raise SystemExit(f"no Bible test sentence of 20-40 tokens in {data}; run `make data`")
    return picked[:n]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, round(q) - 1))]


async def open_loop(url: str, rate: float, seconds: float, sentences: list[str]) -> dict:
    """Send at `rate` requests/s for `seconds` (fixed intervals), at most MAX_IN_FLIGHT at once (a send that
    would exceed it is counted as dropped, not queued). Latency is client-side, queueing included."""
    latencies, errors, dropped, models = [], [], 0, {}
    in_flight = 0
    async with httpx.AsyncClient(timeout=TIMEOUT_S, limits=httpx.Limits(max_connections=MAX_IN_FLIGHT)) as client:

        async def one(i: int) -> None:
            nonlocal in_flight
            in_flight += 1
            started = time.perf_counter()
            try:
                r = await client.post(url + "/translate", json={"q": sentences[i % len(sentences)], "source": "en",
                                                                "target": "de"})  # fmt: skip
                if r.status_code == 200:
                    latencies.append((time.perf_counter() - started) * 1000)
                    model = r.json().get("model")
                    models[model] = models.get(model, 0) + 1
                else:
                    errors.append(f"HTTP {r.status_code}")
            except httpx.TimeoutException:
                errors.append("timeout")
            except httpx.HTTPError as exc:
                errors.append(type(exc).__name__)
            finally:
                in_flight -= 1

        tasks, t0 = [], time.perf_counter()
        total = max(1, int(rate * seconds))
        for i in range(total):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if in_flight >= MAX_IN_FLIGHT:
                dropped += 1
                continue
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
    return {
        "rate_rps": rate, "sent": len(tasks), "ok": len(latencies), "errors": len(errors), "dropped": dropped,
        "error_kinds": sorted(set(errors)), "timeouts": errors.count("timeout"),
        "throughput_rps": round(len(latencies) / elapsed, 3),
        "p50_ms": _r(percentile(latencies, 50)), "p95_ms": _r(percentile(latencies, 95)),
        "p99_ms": _r(percentile(latencies, 99)), "models": models,
    }  # fmt: skip


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 1)
