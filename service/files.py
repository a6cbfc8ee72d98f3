"""LibreTranslate's file translation: `POST /translate_file` (multipart: `file`, `source`, `target`, `api_key`)
answers `{"translatedFileUrl": ".../download_file/NAME"}`; `GET /download_file/NAME` returns the translated file.

Files: `.txt` (UTF-8; translated line by line, blank lines kept) and `.html`/`.htm` (text nodes translated, markup
kept, scripts dropped: `service.html_text`). The request limits hold for files too: the body size, at most
HAT_MAX_CHARS characters a line (.txt) and HAT_MAX_TOTAL_CHARS characters in all. Translated files are kept in
the cache folder, shared by the workers, for FILE_TTL_S, then removed.
"""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse

from service import html_text
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
from service.schemas import TranslateRequest, validate

FORMATS = {".txt": "text/plain; charset=utf-8", ".html": "text/html; charset=utf-8", ".htm": "text/html; charset=utf-8"}
FILE_TTL_S = 3600.0
_STORED = re.compile(r"^[0-9a-f]{32}\.[A-Za-z0-9._-]{1,100}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def store_dir(svc) -> Path:
    folder = svc.settings.serving.cache_dir / "translated-files"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _safe_name(filename: str) -> str:
    name = _UNSAFE.sub("_", Path(filename.replace("\\", "/")).name).strip("._") or "file"
    stem, dot, ext = name.rpartition(".")
    return (stem[:80] + dot + ext[:10]) if dot else name[:90]


def _lines_request(text: str, fields: dict, limits) -> tuple[TranslateRequest, list[str]]:
    lines = text.split("\n")
    request = validate({**fields, "q": lines, "format": "text"}, _file_limits(limits, len(lines)))
    return request, lines


def _file_limits(limits, count: int):
    """The per-text and total limits of a request, with any number of lines (a file is one request)."""
    return type(limits)(limits.max_chars, max(count, 1), limits.max_total_chars)


async def translate_file(request: Request) -> JSONResponse:
    try:
        svc = current_service()
        limits = svc.settings.limits
        fields, files = await read_fields(request, limits.max_body_bytes, 16, max_files=1)
        if "file" not in files:
            raise ApiError(400, "Invalid request: missing file parameter (a multipart upload named file)")
        filename, data = files["file"]
        ext = Path(filename).suffix.lower()
        if ext not in FORMATS:
            raise ApiError(400, f"Invalid request: file format {ext or 'without extension'!r} not supported; "
                                f"send one of {', '.join(FORMATS)}")  # fmt: skip
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ApiError(400, "Invalid request: the file is not UTF-8 text") from None
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        if ext == ".txt":
            req, lines = _lines_request(text, fields, limits)
        else:
            if len(text) > limits.max_total_chars:
                raise ApiError(413, f"the file has {len(text)} characters; the limit is {limits.max_total_chars}")
            req = validate({**fields, "q": [text], "format": "html"}, _file_limits(limits, 1))
        check_access(svc, request, fields, req.chars)
        detected = None
        if req.source == "auto":  # the file's language as a whole, as LibreTranslate detects it
            sample = " ".join(html_text.parse(text).text_nodes()) if ext != ".txt" else text
            detected = detect_source(TranslateRequest([sample[:2000]], False, "auto", None))
        _, translated, _ = await run_translation(await ready_service(), req)
    except ApiError as exc:
        return error_response(exc)
    out = "\n".join(translated) if ext == ".txt" else translated[0]
    folder = store_dir(svc)
    _expire(folder)
    name = f"{secrets.token_hex(16)}.{_safe_name(filename)}"
    (folder / name).write_text(out, encoding="utf-8")
    body = {"translatedFileUrl": str(request.url_for("download_file", name=name))}
    if detected is not None:
        body["detectedLanguage"] = detected[0]
    return JSONResponse(body)


def _expire(folder: Path) -> None:
    cutoff = time.time() - FILE_TTL_S
    for path in folder.iterdir():
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            pass  # another worker removed it first


async def download_file(request: Request):
    name = request.path_params["name"]
    try:
        svc = current_service()
    except ApiError as exc:
        return error_response(exc)
    path = store_dir(svc) / name
    if not _STORED.match(name) or not path.is_file():
        return JSONResponse({"error": "no such translated file (they are kept for an hour)"}, status_code=404)
    ext = Path(name).suffix.lower()
    headers = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"}
    original = name.split(".", 1)[1]
    return FileResponse(path, media_type=FORMATS.get(ext, "application/octet-stream"), filename=original,
                        headers=headers)  # fmt: skip
