"""What the service's routes share: the worker's service instance, body parsing, the access check, source
detection and text/HTML translation."""

from __future__ import annotations

import bentoml
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse

from service import html_text, langid
from service.access import bearer_key
from service.errors import ApiError
from service.schemas import TranslateRequest, parse_fields, read_body


async def ready_service():
    """The worker's `Translator` instance once its model is loaded (503 when it failed or takes too long)."""
    svc = bentoml.get_current_service()
    if svc is None:
        raise ApiError(503, "the service is starting; retry when /readyz answers 200")
    await svc.wait_ready()
    return svc


def current_service():
    svc = bentoml.get_current_service()
    if svc is None:
        raise ApiError(503, "the service is starting")
    return svc


def error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)


async def read_fields(request: Request, limit: int, max_fields: int, max_files: int = 0) -> tuple[dict, dict]:
    """(fields, uploaded files as {name: (filename, bytes)}) from a JSON, urlencoded or multipart body."""
    body = await read_body(request.headers, request.stream(), limit)
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        return parse_fields(content_type, body), {}

    async def replay():
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=max_files, max_fields=max_fields)
    except MultiPartException as exc:
        raise ApiError(400, f"invalid multipart form: {exc.message}") from None
    fields: dict = {}
    files: dict = {}
    for key, value in form.multi_items():
        if not isinstance(value, str):
            files[key] = (value.filename or "", await value.read())
            continue
        fields[key] = [*fields[key], value] if isinstance(fields.get(key), list) else (
            [fields[key], value] if key in fields else value)  # fmt: skip
    return fields, files


def check_access(svc, request: Request, fields: dict, chars: int) -> None:
    """403/413/429 unless this request's key (or its client, when keys are off) may spend `chars` now."""
    if not svc.access.policy.active:
        return
    key = fields.get("api_key")
    key = key if isinstance(key, str) and key else bearer_key(request.headers)
    client = request.client.host if request.client else "unknown"
    try:
        grant = svc.access.check(key, client, chars)
    except ApiError as exc:
        label = "none" if not key and exc.status == 403 else svc.access.label(key)
        outcome = {403: "forbidden", 429: "limited"}.get(exc.status, "refused")
        svc.metrics.api_requests.labels(key_id=label, outcome=outcome).inc()
        raise
    svc.metrics.api_requests.labels(key_id=grant.subject, outcome="ok").inc()


def detect_source(req: TranslateRequest) -> list[dict]:
    """`source: "auto"`: the language of each text; 400 when one is confidently not English."""
    detections = [langid.source_language(t) for t in req.texts]
    for i, d in enumerate(detections):
        if d.language != "en":
            where = f"q[{i}]" if req.as_list else "q"
            raise ApiError(400, f"{where} looks like {d.language!r} (confidence {d.confidence:.0f} %), not "
                                "English: this service translates en -> de; send source 'en' to translate it "
                                "anyway")  # fmt: skip
    return [d.to_dict() for d in detections]


async def run_translation(svc, req: TranslateRequest):
    """(entry id, translated texts, alternatives per text) for a validated request, text or HTML."""
    if req.format != "html":
        result = await svc.translate(req.texts, req.max_latency_ms, req.alternatives)
        return result.entry_id, [r.text for r in result.results], [list(r.alternatives) for r in result.results]
    docs = [html_text.parse(t) for t in req.texts]
    nodes = [node for doc in docs for node in doc.text_nodes()]
    result = await svc.translate(nodes, req.max_latency_ms)
    translated, start = [], 0
    for doc in docs:
        count = len(doc.texts)
        translated.append(doc.render([r.text for r in result.results[start : start + count]]))
        start += count
    return result.entry_id, translated, [[] for _ in docs]
