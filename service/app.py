"""The LibreTranslate-compatible routes, a small Starlette app mounted on the BentoML service (CONTRACT §4).

`POST /translate`, `POST /detect`, `POST /translate_file` + `GET /download_file/NAME` (`service.files`),
`GET|POST /languages`, `GET /frontend/settings`, `POST /suggest` (disabled, as LibreTranslate answers when it is),
`GET /models`, the page at `/` and Swagger at `/docs` (`service.page`), and the OpenAPI document of every route at
`/docs.json` (`service.openapi`). LibreTranslate's API documentation is the reference for fields, replies and
status codes. Handlers reach the worker's service instance through `bentoml.get_current_service()`. Every client
error is a 4xx with `{"error": ...}`; the limits are checked before any model work, and the body is refused while
it streams once it passes the limit. With keys or limits on (`service.access`), translate, detect and
translate_file check the key and take their cost first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from service import files, langid, page
from service.common import (
    check_access,
    current_service,
    detect_source,
    error_response,
    read_fields,
    ready_service,
    run_translation,
)
from service.errors import ApiError
from service.openapi import SPEC, merged_spec
from service.schemas import LANGUAGES, validate, validate_texts

log = logging.getLogger(__name__)


async def translate(request: Request) -> JSONResponse:
    started = time.perf_counter()
    svc = None
    try:
        svc = current_service()
        limits = svc.settings.limits
        fields, _ = await read_fields(request, limits.max_body_bytes, limits.max_texts + 16)
        req = validate(fields, limits)
        check_access(svc, request, fields, req.chars)
        detected = detect_source(req) if req.source == "auto" else None
        entry_id, texts, alternatives = await run_translation(await ready_service(), req)
    except ApiError as exc:
        if svc is not None:
            svc.metrics.requests.labels(status=str(exc.status)).inc()
        return error_response(exc)
    body = {
        "translatedText": texts if req.as_list else texts[0],
        "model": entry_id,
        "latency_ms": round((time.perf_counter() - started) * 1000.0, 3),
    }
    if req.alternatives > 0:
        body["alternatives"] = alternatives if req.as_list else alternatives[0]
    if detected is not None:
        body["detectedLanguage"] = detected if req.as_list else detected[0]
    svc.metrics.requests.labels(status="200").inc()
    return JSONResponse(body)


async def detect(request: Request) -> JSONResponse:
    """LibreTranslate's `/detect`: `[{"confidence": 0-100, "language": code}, ...]`, most likely first (a list of
    such lists when `q` is a list)."""
    try:
        svc = current_service()
        limits = svc.settings.limits
        fields, _ = await read_fields(request, limits.max_body_bytes, limits.max_texts + 16)
        texts, as_list = validate_texts(fields, limits)
        check_access(svc, request, fields, sum(len(t) for t in texts))
        ranked = await asyncio.to_thread(lambda: [[d.to_dict() for d in langid.rank(t)] for t in texts])
    except ApiError as exc:
        return error_response(exc)
    return JSONResponse(ranked if as_list else ranked[0])


async def languages(request: Request) -> JSONResponse:
    return JSONResponse(LANGUAGES)


def frontend_settings_of(svc) -> dict:
    limits, keys_on = svc.settings.limits, svc.access.policy.keys is not None
    return {
        "charLimit": limits.max_chars,
        "frontendTimeout": 500,
        "apiKeys": keys_on,
        "keyRequired": keys_on,
        "suggestions": False,
        "filesTranslation": True,
        "supportedFilesFormat": [".txt", ".html"],
        "language": {"source": {"code": "en", "name": "English"}, "target": {"code": "de", "name": "German"}},
    }


async def frontend_settings(request: Request) -> JSONResponse:
    try:
        return JSONResponse(frontend_settings_of(current_service()))
    except ApiError as exc:
        return error_response(exc)


async def suggest(request: Request) -> JSONResponse:
    return JSONResponse({"error": "Suggestions are disabled on this server."}, status_code=403)


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(SPEC)


_service_spec: list[Callable[[], dict]] = []  # set by the BentoML service that mounts this app


def register_service_spec(spec: Callable[[], dict]) -> None:
    """The mounting service's own OpenAPI document, merged into /docs.json (set once at import)."""
    _service_spec[:] = [spec]


async def docs_json(request: Request) -> JSONResponse:
    return JSONResponse(merged_spec(_service_spec[0]() if _service_spec else {}))


async def models(request: Request) -> JSONResponse:
    try:
        svc = await ready_service()
    except ApiError as exc:
        return error_response(exc)
    return JSONResponse(svc.describe())


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s", request.url.path, exc_info=exc)
    return JSONResponse({"error": "internal error; see the server log"}, status_code=500)


def _routes() -> list[Route]:
    return [
        Route("/translate", translate, methods=["POST"]),
        Route("/detect", detect, methods=["POST"]),
        Route("/translate_file", files.translate_file, methods=["POST"]),
        Route("/download_file/{name}", files.download_file, methods=["GET"]),
        Route("/languages", languages, methods=["GET", "POST"]),
        Route("/frontend/settings", frontend_settings, methods=["GET"]),
        Route("/suggest", suggest, methods=["POST"]),
        Route("/models", models, methods=["GET"]),
        Route("/libretranslate.json", openapi, methods=["GET"]),
        Route("/docs.json", docs_json, methods=["GET"]),
        *page.routes(),
    ]


app = Starlette(routes=_routes(), exception_handlers={HTTPException: _http_error, Exception: _unexpected})
