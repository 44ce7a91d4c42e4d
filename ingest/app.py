"""The ingest app factory: one Litestar app, its routes, plugins and lifespan."""

from __future__ import annotations

from typing import Literal

from litestar import Litestar, get
from litestar.di import NamedDependency, Provide
from litestar.logging.config import StructLoggingConfig
from litestar.middleware.logging import LoggingMiddlewareConfig
from litestar.openapi import OpenAPIConfig
from litestar.plugins.structlog import StructlogConfig, StructlogPlugin

from ingest.jobs_api import JobsController
from ingest.problems import Problem, problem_details_plugin
from ingest.services import Services, provide_services, services_lifespan
from jobs.settings import Settings, load_settings

__all__ = ["create_app"]

# Multipart framing around the photo; the photo's own limit is checked while reading it.
_FORM_OVERHEAD = 64 * 1024
# Never bodies, headers or cookies: photos and secrets stay out of the logs.
_RESPONSE_FIELDS: tuple[Literal["status_code"], ...] = ("status_code",)


@get("/healthz", summary="The process is up", tags=["health"])
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", summary="Redis reachable, stream and group in place", tags=["health"])
async def readyz(services: NamedDependency[Services]) -> dict[str, str]:
    try:
        await services.redis.ping()
        groups = await services.redis.xinfo_groups(services.keys.stream)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        raise Problem(503, "not_ready", "Redis is not reachable.", str(exc)) from None
    names = {g["name"].decode() if isinstance(g["name"], bytes) else g["name"] for g in groups}
    if services.keys.group not in names:
        raise Problem(503, "not_ready", "The consumer group does not exist yet.")
    return {"status": "ready"}


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or load_settings()
    logging = StructlogPlugin(
        StructlogConfig(
            structlog_logging_config=StructLoggingConfig(log_exceptions="debug"),
            middleware_logging_config=LoggingMiddlewareConfig(
                request_log_fields=("method", "path", "path_params", "query"),
                response_log_fields=_RESPONSE_FIELDS,
                request_headers_to_obfuscate={"authorization", "cookie", "x-api-key"},
                exclude=["/metrics", "/healthz", "/readyz"],
            ),
        )
    )
    return Litestar(
        route_handlers=[JobsController, healthz, readyz],
        dependencies={"services": Provide(provide_services)},
        lifespan=[services_lifespan(settings)],
        plugins=[problem_details_plugin(), logging],
        openapi_config=OpenAPIConfig(title="ghibli-pipeline ingest", version="0.1.0"),
        request_max_body_size=settings.max_upload_bytes + _FORM_OVERHEAD,
        debug=False,
    )
