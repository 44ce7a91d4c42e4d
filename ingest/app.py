"""The ingest app factory: one Litestar app, its routes, middleware, plugins and lifespan.

To add routes, append them to `route_handlers` below (one line per module).
"""

from __future__ import annotations

from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, YamlRenderPlugin

from ingest.admin import AdminController
from ingest.auth import provide_caller
from ingest.body_deadline import BodyDeadlineMiddleware
from ingest.browser_guard import CrossSiteGuard, add_security_headers
from ingest.compat import compat_router
from ingest.connections import configure_connections
from ingest.cors import cors_config
from ingest.health import healthz, readyz
from ingest.jobs_api import JobsController
from ingest.limits import RateLimitMiddleware
from ingest.metrics_route import metrics_endpoint
from ingest.page import page_routes
from ingest.problems import problem_details_plugin
from ingest.request_log import RequestLogMiddleware
from ingest.services import provide_services, services_lifespan
from ingest.sse import job_events
from jobs.logs import configure_logging
from jobs.settings import Settings, load_settings

__all__ = ["create_app"]

# Multipart framing around the photo; the photo's own limit is checked while reading it.
_FORM_OVERHEAD = 64 * 1024


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or load_settings()
    # Each uvicorn worker is a fresh (spawned) process: its logs need the JSON set-up too.
    configure_logging(settings.log_level, settings.log_format)
    configure_connections(settings)  # uvicorn's protocol reads them (ingest/connections.py)
    return Litestar(
        route_handlers=[
            JobsController,
            job_events,
            compat_router,
            healthz,
            readyz,
            metrics_endpoint,
            AdminController,
            *page_routes,
        ],
        dependencies={"services": Provide(provide_services), "caller": Provide(provide_caller)},
        lifespan=[services_lifespan(settings)],
        # Outermost first: every request is logged once, including those the rate limit refuses.
        middleware=[
            RequestLogMiddleware(),
            CrossSiteGuard(),
            BodyDeadlineMiddleware(),
            RateLimitMiddleware(),
        ],
        before_send=[add_security_headers],
        plugins=[problem_details_plugin()],
        cors_config=cors_config(settings),
        openapi_config=OpenAPIConfig(
            title="ghibli-pipeline ingest",
            version="1.0.0",
            description="Photos in, Studio-Ghibli-style pictures out. Every error is an RFC 9457 problem "
            "document (`application/problem+json`) with a stable `code`.",
            # The document only: the UIs (Swagger, Redoc, ...) load their scripts from CDNs, which the
            # page's policy forbids and a self-hosted service should not depend on.
            render_plugins=[JsonRenderPlugin(path=["/", "/openapi.json"]), YamlRenderPlugin()],
        ),
        request_max_body_size=settings.max_upload_bytes + _FORM_OVERHEAD,
        debug=False,
    )
