"""Adaptive batching of concurrent translation requests inside one worker.

The cork idea behind BentoML's dispatcher, without its request shedding (which answers 503 under load): nothing
waits while the model is idle, so a lone request goes straight through; while a batch runs, new requests queue,
and the next batch takes every queued request for the same entry (and number of alternatives), up to `max_texts`
texts. Batch size therefore
follows the load. One batch runs at a time, in a worker thread, since each already uses every intra-op thread.
(BentoML's own batching serves only HTTP calls of a `batchable` API; the LibreTranslate routes live in a mounted
ASGI app and call the model in-process, so they batch here.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# (entry id, texts, alternatives per text) -> (entry id actually used, one result per text)
RunBatch = Callable[[str, list[str], int], tuple[str, list]]


@dataclass
class _Job:
    entry_id: str
    texts: list[str]
    future: asyncio.Future
    alternatives: int = 0
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class BatchResult:
    entry_id: str
    results: list
    latency_ms: float  # from enqueue to result, queueing included
    batch_texts: int  # texts in the batch this request rode in


class Batcher:
    def __init__(self, run: RunBatch, max_texts: int = 32):
        self.run, self.max_texts = run, max(1, max_texts)
        self._queue: deque[_Job] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    async def submit(self, entry_id: str, texts: list[str], alternatives: int = 0) -> BatchResult:
        """Translate `texts` with `entry_id`, batched with whatever else is waiting for the same entry and
        number of alternatives."""
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._consume())
        job = _Job(entry_id, texts, loop.create_future(), alternatives)
        self._queue.append(job)
        self._wake.set()
        return await job.future

    def _take(self) -> list[_Job]:
        """The head job plus the queued jobs for the same entry and alternatives that fit in `max_texts`, in
        arrival order."""
        head = self._queue.popleft()
        batch, size, keep = [head], len(head.texts), deque()
        while self._queue:
            job = self._queue.popleft()
            same = (job.entry_id, job.alternatives) == (head.entry_id, head.alternatives)
            if same and size + len(job.texts) <= self.max_texts:
                batch.append(job)
                size += len(job.texts)
            else:
                keep.append(job)
        self._queue.extendleft(reversed(keep))
        return batch

    async def _consume(self) -> None:
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._take()
            texts = [t for job in batch for t in job.texts]
            try:
                used, results = await asyncio.to_thread(self.run, batch[0].entry_id, texts, batch[0].alternatives)
            except Exception as exc:  # handed to every waiting request; the loop must survive
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            done, start = time.perf_counter(), 0
            for job in batch:
                part = results[start : start + len(job.texts)]
                start += len(job.texts)
                if not job.future.done():  # the client may have gone away
                    job.future.set_result(BatchResult(used, part, (done - job.enqueued) * 1000.0, len(texts)))
