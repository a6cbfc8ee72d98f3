"""Request schemas: LibreTranslate bodies -> a validated `TranslateRequest`, or an `ApiError` (4xx, one message).

Accepted, as LibreTranslate does: a JSON object, or form fields (urlencoded or multipart; `q` repeated for a
list). `q` is a string or a list of strings; `source` ("en" or "auto") and `target` ("de") are required, as in
LibreTranslate (a missing one is a 400); `format` "text" (default) or "html"; `alternatives` a whole number
(0 default, at most ALTERNATIVES_LIMIT); `api_key` is read by `service.access`; `max_latency_ms` is an optional
positive number; unknown fields are ignored. Control characters become spaces and unpaired surrogates U+FFFD, so
any text that passes the limits can be translated.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from service.errors import ApiError
from service.settings import Limits

__all__ = ["ApiError", "TranslateRequest", "validate"]

SOURCES = ("en", "auto")
TARGET = "de"
FORMATS = ("text", "html")
ALTERNATIVES_LIMIT = 5  # each one widens the beam by two (hat_engine.model.translate.translate_texts)
LANGUAGES = [
    {"code": "en", "name": "English", "targets": ["de"]},
    {"code": "de", "name": "German", "targets": []},
]
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True)
class TranslateRequest:
    texts: list[str]
    as_list: bool  # reply with a list (q was a list)
    source: str
    max_latency_ms: float | None
    format: str = "text"
    alternatives: int = 0

    @property
    def chars(self) -> int:
        return sum(len(t) for t in self.texts)


async def read_body(headers: Mapping[str, str], stream: AsyncIterator[bytes], limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds `limit` bytes (declared or streamed)."""
    declared = headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body of {int(declared)} bytes exceeds the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_fields(content_type: str, body: bytes) -> dict[str, Any]:
    """JSON object or urlencoded form -> fields (a repeated form field becomes a list). Multipart is parsed by the
    caller (Starlette) and passed to `validate` directly."""
    media = content_type.split(";")[0].strip().lower()
    text = body.decode("utf-8", errors="replace")
    if media == "application/json" or (not media and text.lstrip().startswith(("{", "["))):
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            raise ApiError(400, "the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise ApiError(400, f"the JSON body must be an object, got {type(data).__name__}")
        return data
    if media in ("", "application/x-www-form-urlencoded", "text/plain"):
        fields: dict[str, Any] = {}
        for key, value in parse_qsl(text, keep_blank_values=True):
            fields[key] = [*fields[key], value] if isinstance(fields.get(key), list) else (
                [fields[key], value] if key in fields else value)  # fmt: skip
        return fields
    raise ApiError(415, f"unsupported Content-Type {media!r}; send application/json or a form")


def clean_text(text: str) -> str:
    """NFC, control characters -> space, unpaired surrogates -> U+FFFD."""
    text = text.encode("utf-8", errors="surrogatepass").decode("utf-8", errors="replace")
    return _CONTROL.sub(" ", unicodedata.normalize("NFC", text))


def validate(fields: Mapping[str, Any], limits: Limits, name: str = "q", languages: bool = True) -> TranslateRequest:
    """Check a LibreTranslate request's fields against the API and the limits (`name`: the texts' field;
    `languages`: source and target are required, as on LibreTranslate's routes)."""
    texts, as_list = validate_texts(fields, limits, name)
    source, target = "en", TARGET
    if languages:
        for field_name in ("source", "target"):
            if fields.get(field_name) in (None, "", []):
                raise ApiError(400, f"Invalid request: missing {field_name} parameter (this service translates "
                                    "source 'en' or 'auto' to target 'de')")  # fmt: skip
        source, target = _code(fields["source"], "source"), _code(fields["target"], "target")
    if source not in SOURCES or target != TARGET:
        raise ApiError(400, f"{source!r} -> {target!r} is not supported: this service translates en -> de "
                            "(source 'en' or 'auto', target 'de')")  # fmt: skip
    fmt = fields.get("format") or "text"
    if fmt not in FORMATS:
        raise ApiError(400, f"format {fmt!r} is not supported; use 'text' or 'html'")
    return TranslateRequest([clean_text(t) for t in texts], as_list, source, parse_budget(fields.get("max_latency_ms")),
                            fmt, parse_alternatives(fields.get("alternatives")))  # fmt: skip


def validate_texts(fields: Mapping[str, Any], limits: Limits, name: str = "q") -> tuple[list[str], bool]:
    """`fields[name]`: a string or a non-empty list of strings within the limits -> (texts, it was a list)."""
    q = fields.get(name)
    if q is None:
        raise ApiError(400, f"Invalid request: missing {name} parameter (a string or a list of strings)")
    as_list = isinstance(q, list)
    texts = q if as_list else [q]
    if not all(isinstance(t, str) for t in texts):
        raise ApiError(400, f"{name} must be a string or a list of strings")
    if as_list and not texts:
        raise ApiError(400, f"{name} is an empty list")
    if len(texts) > limits.max_texts:
        raise ApiError(413, f"{name} has {len(texts)} texts; the limit is {limits.max_texts} per request")
    for i, t in enumerate(texts):
        if len(t) > limits.max_chars:
            where = f"{name}[{i}]" if as_list else name
            raise ApiError(413, f"{where} has {len(t)} characters; the limit is {limits.max_chars} per text")
    total = sum(len(t) for t in texts)
    if total > limits.max_total_chars:
        raise ApiError(413, f"{name} has {total} characters in all; the limit is {limits.max_total_chars} per request")
    return texts, as_list


def parse_alternatives(value: Any) -> int:
    """`alternatives`: absent/empty -> 0; else a whole number >= 0, capped at ALTERNATIVES_LIMIT (as LibreTranslate
    caps it at its --alternatives-limit)."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if value is None or value == "":
        return 0
    if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
        raise ApiError(400, "alternatives format is invalid: send a whole number such as 3")
    try:
        count = int(value)
    except (TypeError, ValueError, OverflowError):
        raise ApiError(400, "alternatives format is invalid: send a whole number such as 3") from None
    return max(0, min(count, ALTERNATIVES_LIMIT))


def _code(value: Any, name: str) -> str:
    if isinstance(value, list) and len(value) == 1:  # a form field sent once more than needed
        value = value[0]
    if not isinstance(value, str):
        raise ApiError(400, f"{name} must be a language code string such as 'en'")
    return value.strip().lower()


def parse_budget(value: Any) -> float | None:
    """`max_latency_ms`: absent/empty -> None; else a finite number > 0 (a numeric string is fine in forms)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ApiError(400, "max_latency_ms must be a number of milliseconds")
    try:
        budget = float(value)
    except (TypeError, ValueError):
        raise ApiError(400, "max_latency_ms must be a number of milliseconds") from None
    if not math.isfinite(budget) or budget <= 0:
        raise ApiError(400, "max_latency_ms must be a positive number of milliseconds")
    return budget
