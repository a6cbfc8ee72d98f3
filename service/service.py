"""The BentoML translation service: this host's hardware and SLA -> the matching catalog entry (CONTRACT §4).

Importing this module reads the settings (`service.settings`) and checks the catalog; a bad setting or a missing
or invalid catalog stops the process with one line before any worker starts. Each worker then starts the
`ServingEngine` in a background thread (verify, calibrate if needed, select, load, warm up), so `/livez` answers
at once and `/readyz` turns 200 only when the selected model is loaded and warm; a request reaching a worker
that is still loading waits for it. Each worker has its own models, batcher and SLA guard (`HAT_THREADS`
defaults to the CPU limit divided among the workers); the metrics are summed over workers. Serve it with
`hat serve` or `bentoml serve service.service:Translator`.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Annotated

import bentoml
from pydantic import BaseModel, Field
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse

from hat_engine.errors import HatError
from hat_engine.hardware import detect
from hat_engine.serving.engine import Listener, ServingEngine
from service import langid
from service.access import Access
from service.app import app, register_service_spec
from service.batcher import Batcher, BatchResult
from service.metrics import MetricsListener, metrics
from service.middleware import MultipartBoundaryGuard, TypedApiAccess
from service.schemas import ApiError, validate
from service.settings import Settings, load_settings
from service.startup import Startup

log = logging.getLogger(__name__)


def _log_to_stderr() -> None:
    """BentoML configures only its own loggers; the engine's and ours report at INFO beside them."""
    for name in ("hat_engine", "service"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] [%(name)s] %(message)s"))
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False


def _settings_or_exit() -> Settings:
    try:
        return load_settings()
    except HatError as exc:
        raise SystemExit(f"hat serve: error: {exc}") from None


SETTINGS = _settings_or_exit()
READY_WAIT_S = 120.0
RECENT_REQUESTS = 200  # the live p95 on the page and in /models: this worker's last requests


class TranslateOutput(BaseModel):
    translations: list[str] = Field(description="one German text per input text, in order")
    model: str = Field(description="the catalog entry that translated them")
    latency_ms: float = Field(description="server-side latency, queueing included")


@bentoml.asgi_app(app, path="/")
@bentoml.service(name="hat_translator", workers=SETTINGS.workers, traffic={"timeout": 300, "max_concurrency": 512})
class Translator:
    def __init__(self) -> None:
        _log_to_stderr()
        self.settings = SETTINGS
        self.metrics = metrics()
        self.host = detect(SETTINGS.serving.backend, SETTINGS.threads, probe_cuda=False)  # serving runs on CPU
        self.report = MetricsListener(self.metrics, self.host.profile_id, SETTINGS.serving.sla_ms)
        self.engine = ServingEngine(SETTINGS.serving, self.host, Listener(self.report.refused, self.report.switched))
        self.batcher = Batcher(self.engine.translate, SETTINGS.max_batch)
        self.access = Access(SETTINGS.access)
        self.recent: deque[float] = deque(maxlen=RECENT_REQUESTS)
        self.startup = Startup(self._start)

    def _start(self) -> None:
        langid.load(SETTINGS.serving.cache_dir / "langid")  # memory-mapped: resident only where texts touch it
        plan = self.engine.start()
        self.report.hardware_profile = plan.host_profile  # its thread count may have been measured at startup
        self.report.started(plan.selected.entry_id, plan.sla_violation)

    def __is_ready__(self) -> bool:
        return self.startup.ready.is_set()

    def __is_alive__(self) -> bool:
        return self.startup.failure is None

    async def wait_ready(self, timeout_s: float = READY_WAIT_S) -> None:
        await self.startup.wait(timeout_s)

    async def translate(
        self, texts: list[str], max_latency_ms: float | None = None, alternatives: int = 0
    ) -> BatchResult:
        """Route, batch, translate, and record the request's latency, tokens and any SLA violation."""
        await self.wait_ready()
        result = await self.batcher.submit(self.engine.route(max_latency_ms), texts, alternatives)
        self.recent.append(result.latency_ms)
        tokens = sum(t.tokens for t in result.results)
        observation = self.engine.observe(result.entry_id, result.latency_ms, tokens)
        violation = observation is not None and observation.violation
        self.report.served(result.entry_id, result.latency_ms, tokens, result.batch_texts, violation)
        return result

    def describe(self) -> dict:
        limits = self.settings.limits
        return {**self.engine.describe(), "max_batch_texts": self.settings.max_batch, "workers": self.settings.workers,
                "limits": {"max_chars": limits.max_chars, "max_texts": limits.max_texts,
                           "max_total_chars": limits.max_total_chars},
                "recent": self.recent_latency()}  # fmt: skip

    def recent_latency(self) -> dict:
        """p50/p95 of this worker's last RECENT_REQUESTS requests (queueing included), ms."""
        values = sorted(self.recent)
        if not values:
            return {"requests": 0, "p50_ms": None, "p95_ms": None}
        at = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
        return {"requests": len(values), "p50_ms": round(at(0.50), 3), "p95_ms": round(at(0.95), 3)}

    @bentoml.api(route="/v1/translate")
    async def translate_texts(
        self,
        texts: Annotated[list[str], Field(description="English texts")],
        max_latency_ms: Annotated[float | None, Field(description="p95 budget on the reference workload, ms")] = None,
    ) -> TranslateOutput:
        """Typed JSON API: English texts -> German, batched with concurrent requests."""
        try:
            fields = {"texts": texts, "max_latency_ms": max_latency_ms}
            req = validate(fields, self.settings.limits, name="texts", languages=False)
            result = await self.translate(req.texts, req.max_latency_ms)
        except ApiError as exc:
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        return TranslateOutput(translations=[r.text for r in result.results], model=result.entry_id,
                               latency_ms=round(result.latency_ms, 3))  # fmt: skip


Translator.add_asgi_middleware(MultipartBoundaryGuard)
Translator.add_asgi_middleware(TypedApiAccess)
if SETTINGS.cors_origins:  # browsers on these origins may call the API (preflight answered here)
    Translator.add_asgi_middleware(CORSMiddleware, allow_origins=list(SETTINGS.cors_origins),
                                   allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"],
                                   max_age=600)  # fmt: skip
register_service_spec(lambda: Translator.openapi_spec.asdict())
