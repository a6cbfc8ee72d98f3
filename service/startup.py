"""A worker's start-up in the background (catalog, calibration, models) and the readiness a request waits on."""

import asyncio
import logging
import threading
import time
from collections.abc import Callable

from hat_engine.errors import HatError
from service.errors import ApiError

log = logging.getLogger(__name__)


class Startup:
    """Runs `start` on a thread at once; `ready` is set when it returned, `failure` says why it did not."""

    def __init__(self, start: Callable[[], None]):
        self.ready, self.failure = threading.Event(), None
        self._start = start
        threading.Thread(target=self._run, name="hat-startup", daemon=True).start()

    def _run(self) -> None:
        try:
            self._start()
        except HatError as exc:
            self.failure = str(exc)
            log.error("hat serve: startup failed: %s", exc)
            return
        except Exception as exc:  # a bug or an OS error: reported the same way, with the traceback
            self.failure = f"{type(exc).__name__}: {exc}"
            log.exception("hat serve: startup failed")
            return
        self.ready.set()

    async def wait(self, timeout_s: float) -> None:
        """Hold a request that reached a worker still loading (readiness is per pod, not per worker)."""
        deadline = time.monotonic() + timeout_s
        while not self.ready.is_set():
            if self.failure is not None:
                raise ApiError(503, f"the service failed to start: {self.failure}")
            if time.monotonic() > deadline:
                raise ApiError(503, "the model is still loading; retry when /readyz answers 200")
            await asyncio.sleep(0.05)
