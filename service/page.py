"""The service's own page at `/` (try a translation; see which entry answered, the host profile, the SLA and the
live p95) and BentoML's Swagger UI moved to `/docs`.

Everything is served from this server (`service/static/`, and BentoML's own Swagger assets under
`/static_content/`): no CDN, font, tracker or validator, so the page works offline. A Content-Security-Policy
header holds that in the browser too. BentoML's own index at `/` (Swagger with Google Tag Manager) is shadowed:
the mounted app's routes match before BentoML's index route.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

STATIC = Path(__file__).parent / "static"
ASSETS = {"app.js": "text/javascript", "app.css": "text/css", "docs-init.js": "text/javascript"}
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")  # fmt: skip
# Swagger UI sets inline styles and shows data: images.
DOCS_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "connect-src 'self'; base-uri 'none'; frame-ancestors 'none'")  # fmt: skip
_SECURITY = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def _html(name: str, csp: str) -> Response:
    return FileResponse(STATIC / name, media_type="text/html; charset=utf-8",
                        headers={**_SECURITY, "Content-Security-Policy": csp, "Cache-Control": "no-cache"})  # fmt: skip


async def index(request: Request) -> Response:
    return _html("index.html", PAGE_CSP)


async def docs(request: Request) -> Response:
    return _html("docs.html", DOCS_CSP)


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in ASSETS:
        return JSONResponse({"error": f"no static file {name!r}"}, status_code=404)
    return FileResponse(STATIC / name, media_type=f"{ASSETS[name]}; charset=utf-8",
                        headers={**_SECURITY, "Cache-Control": "no-cache"})  # fmt: skip


def routes() -> list[Route]:
    return [
        Route("/", index, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Route("/static/{name}", asset, methods=["GET"]),
    ]
