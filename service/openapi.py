"""OpenAPI 3 description of the LibreTranslate-compatible routes, served at `GET /libretranslate.json`.

BentoML's `/docs.json` documents its typed APIs (`/v1/translate`) and infrastructure routes, and merges mounted
apps only when they are FastAPI apps; the Starlette routes are therefore described here, by hand.
"""

_TEXTS = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}
_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
_REQUEST = {
    "type": "object",
    "required": ["q"],
    "properties": {
        "q": _TEXTS,
        "source": {"type": "string", "enum": ["en", "auto"], "default": "auto"},
        "target": {"type": "string", "enum": ["de"], "default": "de"},
        "format": {"type": "string", "enum": ["text"], "default": "text"},
        "api_key": {"type": "string", "description": "accepted and ignored"},
        "max_latency_ms": {"type": "number", "exclusiveMinimum": 0,
                           "description": "p95 budget on the reference workload: the best entry meeting it serves"},
    },
}  # fmt: skip
_REPLY = {
    "type": "object",
    "required": ["translatedText", "model", "latency_ms"],
    "properties": {"translatedText": _TEXTS, "model": {"type": "string"}, "latency_ms": {"type": "number"}},
}


def _errors(*codes: int) -> dict:
    return {str(c): {"description": "client error", "content": {"application/json": {"schema": _ERROR}}} for c in codes}


def _json(schema: dict, description: str) -> dict:
    return {"200": {"description": description, "content": {"application/json": {"schema": schema}}}}


SPEC = {
    "openapi": "3.0.2",
    "info": {"title": "hat-translator: LibreTranslate-compatible API", "version": "1"},
    "paths": {
        "/translate": {
            "post": {
                "summary": "Translate English text(s) to German",
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _REQUEST},
                    "application/x-www-form-urlencoded": {"schema": _REQUEST},
                }},
                "responses": {**_json(_REPLY, "translation(s), in q's shape"), **_errors(400, 413, 415)},
            }
        },
        "/languages": {"get": {"summary": "Supported languages (LibreTranslate shape)", "responses": _json(
            {"type": "array", "items": {"type": "object", "properties": {"code": {"type": "string"},
             "name": {"type": "string"}, "targets": {"type": "array", "items": {"type": "string"}}}}}, "languages")}},
        "/models": {"get": {"summary": "Hardware profile, SLA, selected entry and all entries",
                            "responses": _json({"type": "object"}, "serving state")}},
    },
}  # fmt: skip
