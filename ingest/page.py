"""The web page: `/` and its static files (hand-written HTML, CSS and JS; no build step, no CDN).

The page talks only to this origin's API, so a strict Content-Security-Policy costs nothing and
keeps injected markup from running scripts (ingest/browser_guard.py sends the same policy with any
other response that is HTML, such as /static/index.html). Files are revalidated on every load (`no-cache` +
ETag): without a build step there are no hashed names to cache forever.
"""

from __future__ import annotations

from pathlib import Path

from litestar import HttpMethod, Router, route
from litestar.datastructures import CacheControlHeader
from litestar.response import File
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from ingest.browser_guard import PAGE_CSP

__all__ = ["STATIC_DIR", "page_routes"]

STATIC_DIR = Path(__file__).resolve().parent / "static"

_PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


# HEAD too: uptime checks and link previews probe the page with it.
@route("/", http_method=[HttpMethod.GET, HttpMethod.HEAD], include_in_schema=False, name="page")
async def index() -> File:
    return File(
        STATIC_DIR / "index.html",
        filename="index.html",
        content_disposition_type="inline",
        media_type="text/html",
        headers=_PAGE_HEADERS,
    )


_static: Router = create_static_files_router(
    path="/static",
    directories=[STATIC_DIR],
    cache_control=CacheControlHeader(no_cache=True),
    include_in_schema=False,
)

page_routes: list[ControllerRouterHandler] = [index, _static]
