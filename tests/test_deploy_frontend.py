"""ops/nginx/frontend.conf (docs/frontends.md) in a real nginx: an existing frontend and ingest behind
one origin. The old product's routes reach ingest, held checks come through, the frontend keeps
everything else, and the client address ingest sees is the one nginx saw: whatever a client puts
in X-Forwarded-For is overwritten, not appended to.

The frontend is a small HTTP server in this process that serves a page and echoes the headers it
receives (what nginx forwards to it, it forwards to ingest too: the headers are set once for the
whole server). Machine-specific parts of the file are replaced as in tests/test_deploy_nginx.py.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.nginx_kit import PROXY_ADDRESS, bind_to_proxy_address, nginx_binary, replace_once, running
from tests.photos import encode, landscape
from tests.procs import ROOT, Proc, RedisServer, base_env, free_port, ghibli, wait_until

pytestmark = pytest.mark.system  # starts processes beyond redis-server (docs/tests.md)

CONF = ROOT / "ops/nginx/frontend.conf"
REQUESTS_PER_MINUTE = 8
HOLD_S = 3.0
FRONT_PAGE = b"<!doctype html><title>the old page</title>"


class Frontend(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/echo":
            body = json.dumps({"headers": dict(self.headers), "peer": self.client_address[0]}).encode()
            kind = "application/json"
        else:
            body, kind = FRONT_PAGE, "text/html"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("frontend-nginx")
    binary = nginx_binary()
    redis = RedisServer(tmp / "redis").start()
    ingest_port, site_port = free_port(), free_port()
    frontend = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Frontend)
    threading.Thread(target=frontend.serve_forever, daemon=True).start()
    env = base_env(
        REDIS_URL=redis.url,
        GHIBLI_PORT=str(ingest_port),
        GHIBLI_TRUSTED_PROXIES=f"{PROXY_ADDRESS}/32",  # nginx, and nobody else
        GHIBLI_RATE_LIMIT_REQUESTS=str(REQUESTS_PER_MINUTE),
        GHIBLI_LONG_POLL_SECONDS=str(HOLD_S),
    )
    ingest: Proc = ghibli(["ingest"], env, tmp / "ingest.log").start()
    conf = CONF.read_text()
    conf = replace_once(conf, "server ingest:8000;", f"server 127.0.0.1:{ingest_port};")
    conf = replace_once(conf, "server frontend:3000;", f"server 127.0.0.1:{frontend.server_address[1]};")
    conf = replace_once(conf, "listen 80;", f"listen 127.0.0.1:{site_port};")
    conf = bind_to_proxy_address(conf)
    try:
        with running(binary, tmp, conf, site_port):
            wait_until(
                lambda: httpx.get(f"http://127.0.0.1:{ingest_port}/healthz", timeout=2).status_code == 200,
                "ingest",
                120,
                ingest.proc,
            )
            yield f"http://127.0.0.1:{site_port}"
    finally:
        ingest.stop()
        redis.stop()
        frontend.shutdown()
        frontend.server_close()


def browser(site: str, source: str) -> httpx.Client:
    """A client from its own loopback address, as a browser elsewhere on the internet would be."""
    return httpx.Client(base_url=site, transport=httpx.HTTPTransport(local_address=source), timeout=60)


def test_the_frontend_keeps_its_pages(site: str) -> None:
    with browser(site, "127.0.0.3") as http:
        page = http.get("/")
        assert page.status_code == 200
        assert page.content == FRONT_PAGE
        assert http.get("/metrics").content == FRONT_PAGE  # not ingest's: only the API goes there
        assert http.get("/api/user").content == FRONT_PAGE  # the frontend's own API routes stay its own


def test_x_forwarded_for_is_overwritten_with_the_address_nginx_saw(site: str) -> None:
    with browser(site, "127.0.0.3") as http:
        echoed = http.get("/echo", headers={"X-Forwarded-For": "203.0.113.7, 198.51.100.1"}).json()
    assert echoed["headers"]["X-Forwarded-For"] == "127.0.0.3"  # not "203.0.113.7, ..., 127.0.0.3"
    assert echoed["peer"] == PROXY_ADDRESS


def test_the_old_routes_reach_ingest_and_checks_are_held(site: str) -> None:
    with browser(site, "127.0.0.4") as http:
        accepted = http.post(
            "/api/transform-ghibli",
            files={"image": ("photo.jpg", encode(landscape(320, 240)), "image/jpeg")},
            data={"prompt": "Ghibli Studio style", "width": "512", "height": "512", "seed": "42"},
        )
        assert accepted.status_code == 200, accepted.text
        task_id = accepted.json()["taskId"]
        started = time.monotonic()
        check = http.post(f"/api/transform-ghibli/check/{task_id}")
        held = time.monotonic() - started
        assert check.status_code == 200, check.text  # not a proxy time-out
        assert check.json()["status"] == "processing"
        assert held >= HOLD_S - 0.2, held
        job = http.get(f"/v1/jobs/{task_id}", params={"wait": 1})
        assert job.status_code == 200
        assert job.json()["status"] == "queued"
        status = http.get("/api/token-status")
        assert status.status_code == 404  # ingest's answer (no ADMIN_SECRET), not the frontend's page
        assert status.json()["code"] == "admin_disabled"


def test_each_browser_has_its_own_limit_behind_the_proxy(site: str) -> None:
    unknown = "/v1/jobs/" + "0" * 32
    with browser(site, "127.0.0.5") as first, browser(site, "127.0.0.6") as second:
        codes = [first.get(unknown).status_code for _ in range(REQUESTS_PER_MINUTE + 2)]
        assert codes[0] == 404
        assert codes[-1] == 429, codes
        # Its own X-Forwarded-For does not make it someone else: nginx overwrites it.
        assert first.get(unknown, headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 429
        assert second.get(unknown).status_code == 404
