"""ASGI middleware around the whole service (BentoML's typed routes included)."""

from __future__ import annotations

import json

import bentoml
from starlette.requests import Request
from starlette.responses import JSONResponse

from service.common import check_access, error_response
from service.errors import ApiError
from service.schemas import read_body


class MultipartBoundaryGuard:
    """A `multipart/form-data` body without a boundary is a client error (400), not the 500 that
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


class TypedApiAccess:
    """Keys and limits (`service.access`) for BentoML's typed `POST /v1/translate`, which the mounted app's
    handlers do not see: the body is read here (within the request limit), the key taken from `api_key` in the
    JSON or the Authorization header, the characters of `texts` charged, and the body replayed to BentoML."""

    PATHS = ("/v1/translate",)

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        svc = bentoml.get_current_service() if scope["type"] == "http" else None
        if svc is None or scope.get("path") not in self.PATHS or not svc.access.policy.active:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            body = await read_body(request.headers, request.stream(), svc.settings.limits.max_body_bytes)
            fields = _json_object(body)
            texts = fields.get("texts")
            chars = sum(len(t) for t in texts if isinstance(t, str)) if isinstance(texts, list) else 0
            check_access(svc, request, fields, chars)
        except ApiError as exc:
            await error_response(exc)(scope, receive, send)
            return
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()  # the client's disconnect, if any
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _json_object(body: bytes) -> dict:
    try:
        data = json.loads(body.decode("utf-8", errors="replace")) if body.strip() else {}
    except (json.JSONDecodeError, RecursionError):
        return {}  # BentoML answers the bad body itself
    return data if isinstance(data, dict) else {}
