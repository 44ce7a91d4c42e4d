"""CORS: which other origins' pages may call ingest straight from the browser (GHIBLI_CORS_ORIGINS).

Off unless the operator lists origins: the built-in page is same-origin and needs none, and a
frontend behind a same-origin proxy needs none either (docs/frontends.md). With origins listed,
Litestar's CORS middleware answers preflights and adds the headers to every answer, errors
included (it sits outside the exception handlers, so a 429's Retry-After is readable too).
Credentials are never allowed: nothing here uses cookies, and an `Access-Control-Allow-Credentials`
answer would let listed sites act with a visitor's ambient credentials. API keys and the admin
secret travel in `Authorization`, which is listed, so a page that holds one may send it.
A preflight from an unlisted origin is refused by Litestar with a plain-text 400 (browsers never
show it to the page; the request itself is then not made).
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from litestar.config.cors import CORSConfig

from jobs.settings import Settings, parse_origins

__all__ = ["ALLOWED_HEADERS", "EXPOSED_HEADERS", "cors_config", "cors_exact_origins", "origin_listed"]

ALLOWED_METHODS = ["GET", "POST", "DELETE"]
ALLOWED_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID", "If-None-Match"]
# What a page may read besides the CORS-safelisted headers: where a new job is, when to retry,
# whether a submission was a replay, a result's validator and file name.
EXPOSED_HEADERS = [
    "Location",
    "Retry-After",
    "RateLimit-Limit",
    "Idempotent-Replayed",
    "ETag",
    "Content-Disposition",
    "WWW-Authenticate",
]


def cors_config(settings: Settings) -> CORSConfig | None:
    origins = parse_origins(settings.cors_origins)
    if not origins:
        return None
    return CORSConfig(
        allow_origins=origins,
        allow_methods=list(ALLOWED_METHODS),  # type: ignore[arg-type] # Litestar's Method literals
        allow_headers=list(ALLOWED_HEADERS),
        expose_headers=list(EXPOSED_HEADERS),
        allow_credentials=False,
        max_age=600,
    )


def cors_exact_origins(settings: Settings) -> frozenset[str]:
    """GHIBLI_CORS_ORIGINS as the cross-site guard reads them (ingest/browser_guard.py): a site whose
    pages may call the API may also post to it. Patterns (`*`, `https://*.example.com`) stay
    patterns; `origin_listed` matches them."""
    return frozenset(origin.lower() for origin in parse_origins(settings.cors_origins))


def origin_listed(origin: str, listed: frozenset[str]) -> bool:
    """Is a browser's Origin one of these origins, or matched by one of their patterns?"""
    if origin in listed or "*" in listed:
        return True
    return any("*" in pattern and fnmatchcase(origin, pattern) for pattern in listed)
