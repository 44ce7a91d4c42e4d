"""ops/nginx/ghibli.conf in a real nginx in front of a real ingest: TLS, the upload limit, SSE
pass-through and the forwarded client address that ingest trusts.

The file runs as written except for what ties it to a machine: loopback ports instead of 80/443 and
ingest:8000, the test's certificate paths, and `proxy_bind 127.0.0.2` so that ingest can tell the
proxy (127.0.0.2) from the clients (other 127.0.0.x addresses) on one host.
"""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.nginx_kit import (
    PROXY_ADDRESS,
    bind_to_proxy_address,
    nginx_binary,
    nginx_version,
    replace_once,
    running,
)
from tests.photos import encode, landscape
from tests.procs import ROOT, Proc, RedisServer, base_env, free_port, ghibli, wait_until

CONF = ROOT / "ops/nginx/ghibli.conf"
REQUESTS_PER_MINUTE = 6


def render(tmp: Path, binary: str, ingest_port: int, http_port: int, https_port: int) -> str:
    conf = CONF.read_text()
    conf = replace_once(conf, "server ingest:8000;", f"server 127.0.0.1:{ingest_port};")
    conf = replace_once(conf, "listen 80;", f"listen 127.0.0.1:{http_port};")
    conf = replace_once(conf, "listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;")
    conf = conf.replace("/etc/nginx/tls/", f"{tmp}/tls/")
    conf = bind_to_proxy_address(conf)
    if nginx_version(binary) < (1, 25, 1):
        conf = replace_once(conf, "    http2 on;\n", "")  # older nginx: `listen ... http2` instead
    return conf


def self_signed(tmp: Path) -> Path:
    tls = tmp / "tls"
    tls.mkdir()
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(tls / "privkey.pem"), "-out", str(tls / "fullchain.pem"),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return tls / "fullchain.pem"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Redis, ingest (trusting only the proxy's address) and nginx in front of it, once for the
    module (ingest takes a while to start); the rate-limit test uses client addresses of its own."""
    tmp_path = tmp_path_factory.mktemp("nginx")
    binary = nginx_binary()
    redis = RedisServer(tmp_path / "redis").start()
    ingest_port, http_port, https_port = free_port(), free_port(), free_port()
    env = base_env(
        REDIS_URL=redis.url,
        GHIBLI_PORT=str(ingest_port),
        GHIBLI_TRUSTED_PROXIES=f"{PROXY_ADDRESS}/32",
        GHIBLI_RATE_LIMIT_REQUESTS=str(REQUESTS_PER_MINUTE),
        GHIBLI_SSE_KEEPALIVE_SECONDS="1",
    )
    ingest: Proc = ghibli(["ingest"], env, tmp_path / "ingest.log").start()
    cert = self_signed(tmp_path)
    conf = render(tmp_path, binary, ingest_port, http_port, https_port)
    try:
        with running(binary, tmp_path, conf, https_port):
            wait_until(
                lambda: httpx.get(f"http://127.0.0.1:{ingest_port}/healthz", timeout=2).status_code == 200,
                "ingest",
                120,
                ingest.proc,
            )
            yield {
                "https": f"https://127.0.0.1:{https_port}",
                "http": f"http://127.0.0.1:{http_port}",
                "cert": str(cert),
                "ingest_log": str(ingest.log_path),
            }
    finally:
        ingest.stop()
        redis.stop()


def client(stack: dict[str, str], source: str = "127.0.0.1") -> httpx.Client:
    context = ssl.create_default_context(cafile=stack["cert"])
    return httpx.Client(
        base_url=stack["https"],
        verify=context,
        transport=httpx.HTTPTransport(verify=context, local_address=source),
        timeout=60,
    )


def test_tls_redirect_and_private_metrics(stack: dict[str, str]) -> None:
    redirect = httpx.get(f"{stack['http']}/v1/jobs/x", follow_redirects=False, timeout=10)
    assert redirect.status_code == 301
    assert redirect.headers["location"].startswith("https://")
    with client(stack) as http:
        health = http.get("/healthz")
        assert health.status_code == 200
        assert health.headers["strict-transport-security"].startswith("max-age=")
        assert http.get("/metrics").status_code == 404


def test_upload_limit_matches_ingest(stack: dict[str, str]) -> None:
    """Just over ingest's limit: ingest's own problem document. Far over: nginx stops it first."""
    with client(stack) as http:
        ok = http.post(
            "/v1/jobs",
            files={"image": ("photo.jpg", encode(landscape(320, 240)), "image/jpeg")},
            data={"width": "256", "height": "256"},
        )
        assert ok.status_code == 202, ok.text

        junk = b"\xff\xd8\xff" + b"\0" * (20_000_000 + 1_000)
        over = http.post("/v1/jobs", files={"image": ("big.jpg", junk, "image/jpeg")})
        assert over.status_code == 413, over.text[:500]
        assert over.headers["content-type"].startswith("application/problem+json")
        assert over.json()["code"]

        far_over = http.post("/v1/jobs", files={"image": ("huge.jpg", b"\0" * 23_000_000, "image/jpeg")})
        assert far_over.status_code == 413
        assert far_over.headers["content-type"].startswith("text/html")  # nginx's own page


def test_sse_passes_through_unbuffered(stack: dict[str, str]) -> None:
    conf = CONF.read_text()
    events = conf[conf.index("location ~ ^/v1/jobs/[^/]+/events$") :]
    events = events[: events.index("}")]
    assert "proxy_buffering off;" in events
    timeout = re.search(r"proxy_read_timeout (\d+)([smh]);", events)
    assert timeout is not None
    assert int(timeout.group(1)) * {"s": 1, "m": 60, "h": 3600}[timeout.group(2)] >= 600

    with client(stack) as http:
        job = http.post(
            "/v1/jobs",
            files={"image": ("photo.jpg", encode(landscape(320, 240)), "image/jpeg")},
            data={"width": "256", "height": "256"},
        ).json()
        # No consumer runs: the job stays queued, and the stream carries its snapshot and then
        # keep-alive comments every second. Each must arrive on its own, not in a buffered lump.
        started = time.monotonic()
        arrivals: list[tuple[float, str]] = []
        with http.stream("GET", f"/v1/jobs/{job['id']}/events", timeout=30) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line.startswith(("data:", ":")):
                    arrivals.append((time.monotonic() - started, line))
                if sum(1 for _, text in arrivals if text.startswith(":")) >= 3:
                    break
    data = [json.loads(text[5:]) for _, text in arrivals if text.startswith("data:")]
    assert data[0]["id"] == job["id"]
    assert data[0]["status"] == "queued"
    # Three keep-alives a second apart came through as they were sent (generous bounds: a loaded
    # machine may delay each, but a buffering proxy would hold them all until its buffer filled).
    comment_times = [t for t, text in arrivals if text.startswith(":")]
    assert comment_times[-1] - comment_times[0] >= 1.0


def test_client_address_comes_from_the_trusted_proxy(stack: dict[str, str]) -> None:
    """Ingest counts requests per client behind the proxy: one client's limit is not another's,
    and a client cannot escape its own limit by sending its own X-Forwarded-For."""
    unknown = "/v1/jobs/" + "0" * 32
    with client(stack, "127.0.0.4") as first, client(stack, "127.0.0.5") as second:
        codes = [first.get(unknown).status_code for _ in range(REQUESTS_PER_MINUTE + 2)]
        assert codes[0] == 404
        assert codes[-1] == 429, codes
        spoofed = first.get(unknown, headers={"X-Forwarded-For": "203.0.113.7"})
        assert spoofed.status_code == 429
        # Without the forwarded address every client would be the proxy and share its limit.
        assert second.get(unknown).status_code == 404
