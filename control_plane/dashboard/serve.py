"""Serving the dashboard's static files at ``/dashboard/`` with the headers a browser UI needs.

- Content-Security-Policy: scripts, styles and connections from this origin only; the one inline
  script (the import map that names the vendored modules) is allowed by its SHA-256, computed
  from ``index.html`` when this module loads, so editing the map cannot silently break the CSP.
- Caching: the vendored files live under versioned paths and never change (a year, immutable);
  the dashboard's own files are revalidated on every load (``no-cache`` + the ETag/Last-Modified
  that StaticFiles sends), so an upgrade is picked up without a stale mix.
- The page keeps the access token in ``sessionStorage`` and sends it as ``Authorization:
  Bearer``. The browser never attaches that header by itself, so a cross-site request cannot
  act as the user (no CSRF token is needed); cookies are not used at all.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

STATIC = Path(__file__).parent / "static"
PREFIX = "/dashboard"
_IMPORT_MAP = re.compile(rb'<script type="importmap">(.*?)</script>', re.S)
# What a browser guesses wrongly or not at all from the file name alone.
_TYPES = {".mjs": "text/javascript; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"


def inline_script_hashes(html: bytes) -> list[str]:
    """CSP source expressions for the inline import map(s) of ``html``."""
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode() + "'"
        for m in _IMPORT_MAP.finditer(html)
    ]


def content_security_policy(html: bytes) -> str:
    scripts = " ".join(["'self'", *inline_script_hashes(html)])
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {scripts}",
            "style-src 'self'",
            # Pico draws checkbox ticks and select arrows as data: SVGs.
            "img-src 'self' data:",
            "connect-src 'self'",
            "font-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


class DashboardFiles:
    """StaticFiles with the dashboard's headers on its answers (200 and 304; a missing file is the
    app's 404 in the API's error envelope)."""

    def __init__(self, directory: Path = STATIC) -> None:
        self.files = StaticFiles(directory=directory, html=True)
        self.csp = content_security_policy((directory / "index.html").read_bytes())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        content_type = _TYPES.get(Path(path).suffix)
        vendored = "/vendor/" in path

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                found = message["status"] in (200, 304)
                headers = list(message.get("headers", []))
                if found and content_type:
                    headers = [(k, v) for k, v in headers if k.lower() != b"content-type"]
                    headers.append((b"content-type", content_type.encode()))
                cache = IMMUTABLE if vendored and found else REVALIDATE
                headers += [
                    (b"cache-control", cache.encode()),
                    (b"content-security-policy", self.csp.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                ]
                message["headers"] = headers
            await send(message)

        await self.files(scope, receive, with_headers)


async def _to_dashboard(request: Request) -> Response:
    return RedirectResponse(PREFIX + "/", status_code=307)


def dashboard_routes() -> list[BaseRoute]:
    """``/dashboard/...`` (the UI) and ``/`` and ``/dashboard`` redirecting to it."""
    return [
        Route("/", _to_dashboard, methods=["GET", "HEAD"]),
        Route(PREFIX, _to_dashboard, methods=["GET", "HEAD"]),
        Mount(PREFIX, app=DashboardFiles(), name="dashboard"),
    ]
