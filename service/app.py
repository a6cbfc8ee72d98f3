"""The LibreTranslate-compatible routes, a small Starlette app mounted on the BentoML service (CONTRACT §4).

`POST /translate` (JSON or form), `GET|POST /languages`, `GET /models`, and their OpenAPI description at
`GET /libretranslate.json`. Handlers reach the worker's service
instance through `bentoml.get_current_service()`. Every client error is a 4xx with `{"error": ...}`; the
limits are checked before any model work, and the body is refused while it streams once it passes the limit.
"""

from __future__ import annotations

import logging
import time

import bentoml
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from service.openapi import SPEC
from service.schemas import LANGUAGES, ApiError, parse_fields, read_body, validate

log = logging.getLogger(__name__)


async def _service():
    """The worker's `Translator` instance once its model is loaded (503 when it failed or takes too long)."""
    svc = bentoml.get_current_service()
    if svc is None:
        raise ApiError(503, "the service is starting; retry when /readyz answers 200")
    await svc.wait_ready()
    return svc


async def _fields(request: Request, limit: int, max_fields: int) -> dict:
    body = await read_body(request.headers, request.stream(), limit)
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        return parse_fields(content_type, body)

    async def replay():
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=0, max_fields=max_fields)
    except MultiPartException as exc:
        raise ApiError(400, f"invalid multipart form: {exc.message}") from None
    fields: dict = {}
    for key, value in form.multi_items():
        value = value if isinstance(value, str) else ""
        fields[key] = [*fields[key], value] if isinstance(fields.get(key), list) else (
            [fields[key], value] if key in fields else value)  # fmt: skip
    return fields


async def translate(request: Request) -> JSONResponse:
    svc = bentoml.get_current_service()
    started = time.perf_counter()
    try:
        limits = svc.settings.limits if svc is not None else None
        if limits is None:
            raise ApiError(503, "the service is starting")
        req = validate(await _fields(request, limits.max_body_bytes, limits.max_texts + 16), limits)
        result = await (await _service()).translate(req.texts, req.max_latency_ms)
    except ApiError as exc:
        if svc is not None:
            svc.metrics.requests.labels(status=str(exc.status)).inc()
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    texts = [r.text for r in result.results]
    body = {
        "translatedText": texts if req.as_list else texts[0],
        "model": result.entry_id,
        "latency_ms": round((time.perf_counter() - started) * 1000.0, 3),
    }
    if req.source == "auto":
        detected = {"confidence": 100.0, "language": "en"}  # the only source language served
        body["detectedLanguage"] = [detected] * len(texts) if req.as_list else detected
    svc.metrics.requests.labels(status="200").inc()
    return JSONResponse(body)


async def languages(request: Request) -> JSONResponse:
    return JSONResponse(LANGUAGES)


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(SPEC)


async def models(request: Request) -> JSONResponse:
    try:
        svc = await _service()
    except ApiError as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    return JSONResponse(svc.describe())


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s", request.url.path, exc_info=exc)
    return JSONResponse({"error": "internal error; see the server log"}, status_code=500)


app = Starlette(
    routes=[
        Route("/translate", translate, methods=["POST"]),
        Route("/languages", languages, methods=["GET", "POST"]),
        Route("/models", models, methods=["GET"]),
        Route("/libretranslate.json", openapi, methods=["GET"]),
    ],
    exception_handlers={HTTPException: _http_error, Exception: _unexpected},
)


class MultipartBoundaryGuard:
    """ASGI middleware: a `multipart/form-data` body without a boundary is a client error (400), not the 500 that
    BentoML's typed `/v1/translate` route answers with (found by schemathesis)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            content_type = headers.get(b"content-type", b"").decode("latin-1").lower()
            if content_type.startswith("multipart/form-data") and "boundary=" not in content_type:
                response = JSONResponse({"error": "a multipart/form-data body needs a boundary parameter"}, 400)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
