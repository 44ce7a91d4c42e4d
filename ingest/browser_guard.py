"""What browsers may not do to ingest on another site's behalf, and what every response tells them.

Cross-site requests: a page on any other site can make a visitor's browser POST a form to
/v1/jobs (a "simple" request: no preflight), spending that visitor's address-based allowances
and filling their history. Browsers say where a request comes from: `Sec-Fetch-Site` (every
current browser) and `Origin`. An unsafe method (POST, PUT, PATCH, DELETE) is refused with `403
cross_site_request` when the browser says it comes from another site, or (older browsers) when its
Origin's host is not this request's host; origins listed in GHIBLI_ALLOWED_ORIGINS or
GHIBLI_CORS_ORIGINS may. Requests
without these headers (curl, the CLI, servers, other apps' backends) are not browsers' and pass.

Response headers (a before-send hook, so refusals made outside any handler get them too):
`X-Content-Type-Options: nosniff` on every response, and the page's Content-Security-Policy
(`frame-ancestors 'none'` included) and Referrer-Policy on every HTML response, whatever path
served it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from ingest.cors import origin_listed
from ingest.problems import Problem
from ingest.services import services_from_state

__all__ = ["PAGE_CSP", "CrossSiteGuard", "add_security_headers"]

PAGE_CSP = "; ".join(
    (
        "default-src 'self'",
        "img-src 'self' blob: data:",
        "media-src 'self' blob:",
        "style-src 'self'",
        "script-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _hostname(netloc: str) -> str:
    return (urlsplit(f"//{netloc}").hostname or "").lower()


class CrossSiteGuard(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if scope.get("method") in _UNSAFE:
            self._check(scope)
        await next_app(scope, receive, send)

    @staticmethod
    def _check(scope: Scope) -> None:
        site = (_header(scope, b"sec-fetch-site") or "").lower()
        origin = (_header(scope, b"origin") or "").lower().rstrip("/")
        if site in ("same-origin", "none"):
            return
        if not site and not origin:
            return  # not a browser
        allowed = services_from_state(scope["litestar_app"].state).allowed_origins
        if origin and origin_listed(origin, allowed):
            return
        if (
            not site
            and origin != "null"
            and _hostname(urlsplit(origin).netloc) == _hostname(_header(scope, b"host") or "")
        ):
            return  # an older browser, on this very host
        raise Problem(
            403,
            "cross_site_request",
            "Cross-site request refused",
            "This request came from a page on another site. Use the page served here, send no Origin "
            "(scripts and servers), or ask the operator to list your site in GHIBLI_ALLOWED_ORIGINS.",
        )


async def add_security_headers(message: Message, scope: Scope) -> None:
    """Before-send hook: nosniff everywhere; the page's policy on whatever serves HTML."""
    if message["type"] != "http.response.start":
        return
    headers = MutableScopeHeaders.from_message(message)
    headers.setdefault("x-content-type-options", "nosniff")
    if (headers.get("content-type") or "").startswith("text/html"):
        headers.setdefault("content-security-policy", PAGE_CSP)
        headers.setdefault("referrer-policy", "no-referrer")
