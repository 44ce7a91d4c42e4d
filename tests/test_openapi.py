"""The OpenAPI document at /schema: every route, schema and error documented, and the API keeps to it.

schemathesis generates requests from /schema/openapi.json and sends them to a real `ghibli ingest`
process (uvicorn + real Redis): no response may be a 5xx, and every response (status, content type,
headers, body) must match what the document says. Examples per operation are bounded to keep the
run short.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ingest.app import create_app
from jobs.settings import load_settings
from tests.ingest_support import api, settings_for
from tests.procs import RedisServer, base_env, free_port, ghibli, wait_until

# Every route of the API (the web page and its static files are not API and not in the schema).
ROUTES = {
    "/v1/jobs": {"post"},
    "/v1/jobs/{job_id}": {"get", "delete"},
    "/v1/jobs/{job_id}/result": {"get"},
    "/v1/jobs/{job_id}/events": {"get"},
    "/api/transform-ghibli": {"post"},
    "/api/transform-ghibli/check/{task_id}": {"get", "post"},
    "/api/token-status": {"get"},
    "/healthz": {"get"},
    "/readyz": {"get"},
    "/metrics": {"get"},
}
PROBLEMS = {
    ("/v1/jobs", "post"): {"400", "413", "415", "422", "429", "503"},
    ("/v1/jobs/{job_id}", "get"): {"404", "429"},
    ("/v1/jobs/{job_id}", "delete"): {"404", "429"},
    ("/v1/jobs/{job_id}/result", "get"): {"400", "404", "409", "410", "429"},
    ("/v1/jobs/{job_id}/events", "get"): {"404", "429"},
    ("/api/transform-ghibli", "post"): {"400", "413", "415", "422", "429", "503"},
    ("/api/token-status", "get"): {"401", "404", "429"},
    ("/readyz", "get"): {"503"},
}


@pytest.mark.anyio
async def test_every_route_and_error_is_documented(redis_server: RedisServer) -> None:
    async with api(settings_for(redis_server)) as client:
        response = await client.get("/schema/openapi.json")
        assert (await client.get("/schema")).status_code == 200
    assert response.status_code == 200
    doc = response.json()
    paths = doc["paths"]
    for path, methods in ROUTES.items():
        assert path in paths, path
        assert methods <= set(paths[path]), path
        for method in methods:
            assert paths[path][method].get("summary"), (path, method)
    problem_schema = doc["components"]["schemas"]["ProblemDocument"]
    assert {"type", "title", "status", "detail", "code"} <= set(problem_schema["required"])
    for (path, method), statuses in PROBLEMS.items():
        responses = paths[path][method]["responses"]
        for status in statuses:
            assert status in responses, (path, method, status)
            content = responses[status]["content"]
            assert set(content) == {"application/problem+json"}, (path, method, status)
            assert content["application/problem+json"]["schema"]["$ref"].endswith("/ProblemDocument")

    submit = paths["/v1/jobs"]["post"]
    assert "202" in submit["responses"]
    assert "Location" in submit["responses"]["202"]["headers"]
    assert "multipart/form-data" in submit["requestBody"]["content"]
    assert {p["name"] for p in submit["parameters"]} == {"Idempotency-Key"}
    result = paths["/v1/jobs/{job_id}/result"]["get"]
    assert set(result["responses"]["200"]["content"]) == {"image/png", "image/jpeg", "image/webp"}
    assert "304" in result["responses"]
    assert {p["name"] for p in result["parameters"]} >= {"format", "If-None-Match"}
    events = paths["/v1/jobs/{job_id}/events"]["get"]
    assert "text/event-stream" in events["responses"]["200"]["content"]
    assert {p["name"] for p in events["parameters"]} >= {"Last-Event-ID"}
    status = paths["/v1/jobs/{job_id}"]["get"]
    assert {p["name"] for p in status["parameters"]} >= {"wait", "after"}  # the long-poll
    check = paths["/api/transform-ghibli/check/{task_id}"]["get"]["responses"]
    assert {"200", "404", "500"} <= set(check)
    assert "image/png" in check["200"]["content"]
    assert "application/json" in check["200"]["content"]


@pytest.fixture(scope="module")
def live_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    redis = RedisServer(tmp_path_factory.mktemp("schemathesis-redis")).start()
    port = free_port()
    env = base_env(
        REDIS_URL=redis.url,
        GHIBLI_PORT=str(port),
        GHIBLI_RATE_LIMIT_SUBMITS="0",
        GHIBLI_RATE_LIMIT_REQUESTS="0",
        GHIBLI_MAX_BACKLOG="0",
        GHIBLI_MAX_UNFINISHED_PER_CLIENT="0",
        GHIBLI_MAX_STORED_BYTES_PER_CLIENT="0",
        GHIBLI_LOG_LEVEL="warning",
    )
    proc = ghibli(["ingest"], env, tmp_path_factory.mktemp("schemathesis-ingest") / "ingest.log").start()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(url + "/healthz", timeout=2).status_code == 200, "ingest", 90, proc.proc)
        served = httpx.get(url + "/schema/openapi.json", timeout=10).json()
        assert served == SPEC  # what is tested below is what the server publishes
        yield url
    finally:
        proc.stop()
        redis.stop()


# The document as the app builds it (no Redis needed to build it); requests go to the live server.
SPEC = create_app(
    load_settings(environ=base_env(REDIS_URL="redis://127.0.0.1:1/0"))
).openapi_schema.to_schema()
schema = schemathesis.openapi.from_dict(SPEC)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.mark.system
@schema.parametrize()
@hypothesis.settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    derandomize=True,
)
def test_api_keeps_to_its_schema(case: Any, live_url: str) -> None:
    case.call_and_validate(base_url=live_url, checks=CHECKS, timeout=30)
