"""OpenAPI 3 description of the LibreTranslate-compatible routes (LibreTranslate's API documentation is the
reference), served alone at `GET /libretranslate.json` and merged into BentoML's document at `GET /docs.json`.

BentoML's own document covers its typed APIs (`/v1/translate`) and infrastructure routes, and merges mounted apps
only when they are FastAPI apps; the Starlette routes are therefore described here, by hand, so that Swagger at
`/docs` shows them and schemathesis (bench/fuzz.py) fuzzes every route, JSON and form.
"""

from __future__ import annotations

import copy

_TEXTS = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}
_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
_KEY = {"type": "string", "description": "API key, when the server requires one (or an Authorization: Bearer header)"}
_REQUEST = {
    "type": "object",
    "required": ["q", "source", "target"],
    "properties": {
        "q": _TEXTS,
        "source": {"type": "string", "enum": ["en", "auto"], "description": "auto: detected; 400 unless English"},
        "target": {"type": "string", "enum": ["de"]},
        "format": {"type": "string", "enum": ["text", "html"], "default": "text",
                   "description": "html: text nodes translated, markup kept, scripts and styles dropped"},
        "alternatives": {"type": "integer", "minimum": 0, "default": 0,
                         "description": "other translations per text, from the beam (at most 5)"},
        "api_key": _KEY,
        "max_latency_ms": {"type": "number", "minimum": 0, "exclusiveMinimum": True,  # OpenAPI 3.0 form
                           "description": "p95 budget on the reference workload: the best entry meeting it serves"},
    },
}  # fmt: skip
_DETECTION = {"type": "object", "required": ["confidence", "language"],
              "properties": {"confidence": {"type": "number"}, "language": {"type": "string"}}}  # fmt: skip
_REPLY = {
    "type": "object",
    "required": ["translatedText", "model", "latency_ms"],
    "properties": {
        "translatedText": _TEXTS, "model": {"type": "string"}, "latency_ms": {"type": "number"},
        "alternatives": {"type": "array", "items": {}},
        "detectedLanguage": {"oneOf": [_DETECTION, {"type": "array", "items": _DETECTION}]},
    },
}  # fmt: skip
_DETECT_REQUEST = {"type": "object", "required": ["q"], "properties": {"q": _TEXTS, "api_key": _KEY}}
_FILE_REQUEST = {
    "type": "object",
    "required": ["file", "source", "target"],
    "properties": {"file": {"type": "string", "format": "binary", "description": ".txt or .html, UTF-8"},
                   "source": {"type": "string", "enum": ["en", "auto"]}, "target": {"type": "string", "enum": ["de"]},
                   "api_key": _KEY},
}  # fmt: skip
_SETTINGS = {"type": "object", "required": ["charLimit", "apiKeys", "keyRequired", "filesTranslation", "language"]}


def _errors(*codes: int) -> dict:
    return {str(c): {"description": "client error", "content": {"application/json": {"schema": _ERROR}}} for c in codes}


def _json(schema: dict, description: str) -> dict:
    return {"200": {"description": description, "content": {"application/json": {"schema": schema}}}}


def _body(schema: dict, multipart: bool = True) -> dict:
    content = {"application/json": {"schema": schema}, "application/x-www-form-urlencoded": {"schema": schema}}
    if multipart:
        content["multipart/form-data"] = {"schema": schema}
    return {"required": True, "content": content}


_KEYED = (400, 403, 413, 415, 429)
SPEC = {
    "openapi": "3.0.2",
    "info": {"title": "hat-translator: LibreTranslate-compatible API", "version": "1"},
    "paths": {
        "/translate": {"post": {
            "summary": "Translate English text(s) to German", "requestBody": _body(_REQUEST),
            "responses": {**_json(_REPLY, "translation(s), in q's shape"), **_errors(*_KEYED)}}},
        "/detect": {"post": {
            "summary": "Detect the language of text(s)", "requestBody": _body(_DETECT_REQUEST),
            "responses": {**_json({"type": "array", "items": {}}, "candidates, most likely first"),
                          **_errors(*_KEYED)}}},
        "/translate_file": {"post": {
            "summary": "Translate a .txt or .html file",
            "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": _FILE_REQUEST}}},
            "responses": {**_json({"type": "object", "required": ["translatedFileUrl"],
                                   "properties": {"translatedFileUrl": {"type": "string"}}}, "where to download it"),
                          **_errors(*_KEYED)}}},
        "/download_file/{name}": {"get": {
            "summary": "A file translated by /translate_file (kept for an hour)",
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "the translated file"}, **_errors(404)}}},
        "/languages": {"get": {"summary": "Supported languages (LibreTranslate shape)", "responses": _json(
            {"type": "array", "items": {"type": "object", "properties": {"code": {"type": "string"},
             "name": {"type": "string"}, "targets": {"type": "array", "items": {"type": "string"}}}}}, "languages")}},
        "/frontend/settings": {"get": {"summary": "Settings a LibreTranslate front end reads",
                                       "responses": _json(_SETTINGS, "settings")}},
        "/suggest": {"post": {"summary": "Suggestions (disabled on this server: 403)",
                              "requestBody": _body({"type": "object"}, multipart=False),
                              "responses": _errors(403)}},
        "/models": {"get": {"summary": "Hardware profile, SLA, selected entry, live p95 and all entries",
                            "responses": _json({"type": "object"}, "serving state")}},
    },
}  # fmt: skip


def merged_spec(bentoml_spec: dict) -> dict:
    """BentoML's OpenAPI document with the LibreTranslate routes added (its own paths win on a clash)."""
    spec = copy.deepcopy(bentoml_spec)
    paths = spec.setdefault("paths", {})
    for path, item in SPEC["paths"].items():
        paths.setdefault(path, copy.deepcopy(item))
    spec.setdefault("info", {})["description"] = (
        "LibreTranslate-compatible routes (/translate, /detect, /translate_file, /languages, /frontend/settings) "
        "and the typed /v1/translate. The page to try it is at /."
    )
    return spec
