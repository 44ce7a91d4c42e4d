"""ops/nginx/ghibli.conf in a real nginx in front of a real ingest: TLS, the upload limit, SSE
pass-through and the forwarded client address that ingest trusts.

The file runs as written except for what ties it to a machine: loopback ports instead of 80/443 and
ingest:8000, the test's certificate paths, and `proxy_bind 127.0.0.2` so that ingest can tell the
proxy (127.0.0.2) from the clients (other 127.0.0.x addresses) on one host; and the body time-out,
shortened so that its test takes seconds.
"""

from __future__ import annotations

import json
import re
import socket
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

pytestmark = pytest.mark.system  # starts processes beyond redis-server (docs/tests.md)

CONF = ROOT / "ops/nginx/ghibli.conf"
SUBMITS_PER_MINUTE = 6
BODY_TIMEOUT_S = 2


def render(tmp: Path, binary: str, ingest_port: int, http_port: int, https_port: int) -> str:
    conf = CONF.read_text()
    conf = replace_once(conf, "server ingest:8000;", f"server 127.0.0.1:{ingest_port};")
    conf = replace_once(conf, "listen 80;", f"listen 127.0.0.1:{http_port};")
    conf = replace_once(conf, "listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;")
    conf = conf.replace("/etc/nginx/tls/", f"{tmp}/tls/")
    conf = bind_to_proxy_address(conf)
    conf = replace_once(conf, "client_body_timeout 30s;", f"client_body_timeout {BODY_TIMEOUT_S}s;")
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
        GHIBLI_RATE_LIMIT_SUBMITS=str(SUBMITS_PER_MINUTE),
        GHIBLI_RATE_LIMIT_REQUESTS="0",  # the held streams of the limit_conn test are requests too
        GHIBLI_SSE_KEEPALIVE_SECONDS="1",
        GHIBLI_MAX_STREAMS_PER_CLIENT="100",  # nginx's limit_conn (32) is what the test meets first
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
                "https_port": str(https_port),
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
        # Every spelling of the metrics path is closed, not only the exact one.
        for path in (
            "/metrics",
            "/metrics/",
            "/metrics%2F",
            "/metrics%2f",
            "/metrics.txt",
            "//metrics",
            "/metrics?x=1",
        ):
            closed = http.get(httpx.URL(stack["https"] + path))  # as written, not tidied by httpx
            assert closed.status_code == 404, path
            assert "ghibli_" not in closed.text, path


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
    """Ingest counts submissions per client behind the proxy: one client's limit is not another's,
    and a client cannot escape its own limit by sending its own X-Forwarded-For."""

    def submit(http: httpx.Client, **headers: str) -> int:
        return http.post(
            "/v1/jobs", files={"image": ("x.jpg", b"not a photo", "image/jpeg")}, headers=headers
        ).status_code

    with client(stack, "127.0.0.4") as first, client(stack, "127.0.0.5") as second:
        codes = [submit(first) for _ in range(SUBMITS_PER_MINUTE + 2)]
        assert codes[0] == 415
        assert codes[-1] == 429, codes
        assert submit(first, **{"X-Forwarded-For": "203.0.113.7"}) == 429
        # Without the forwarded address every client would be the proxy and share its limit.
        assert submit(second) == 415


def problem(response: httpx.Response) -> dict[str, object]:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text[:200]
    body: dict[str, object] = response.json()
    return body


def test_requests_in_progress_and_request_rates_are_limited_per_address(stack: dict[str, str]) -> None:
    with client(stack, "127.0.0.9") as http:
        job = http.post(
            "/v1/jobs",
            files={"image": ("photo.jpg", encode(landscape(320, 240, seed=9)), "image/jpeg")},
            data={"width": "256", "height": "256"},
        ).json()
    streams: list[tuple[httpx.Client, httpx.Response]] = []
    refused: list[httpx.Response] = []
    try:
        for _ in range(40):  # 32 held streams at once is the limit of one address
            http = client(stack, "127.0.0.6")
            response = http.send(http.build_request("GET", f"/v1/jobs/{job['id']}/events"), stream=True)
            if response.status_code == 200:
                streams.append((http, response))
            else:
                response.read()
                refused.append(response)
                http.close()
        assert len(streams) == 32
        assert {r.status_code for r in refused} == {429}
        assert problem(refused[0])["code"] == "rate_limited"
        assert refused[0].headers["retry-after"] == "5"
        # Another address is not affected.
        with client(stack, "127.0.0.8") as other:
            assert other.get("/healthz").status_code == 200
    finally:
        for http, response in streams:
            response.close()
            http.close()
    # A flood of requests from one address (probes: ingest itself does not limit them) is cut off.
    with client(stack, "127.0.0.7") as flood:
        codes = [flood.get("/healthz").status_code for _ in range(200)]
    assert codes[0] == 200
    assert 429 in codes, codes


def test_a_stalled_upload_body_is_cut_off(stack: dict[str, str]) -> None:
    context = ssl.create_default_context(cafile=stack["cert"])
    with (
        socket.create_connection(("127.0.0.1", int(stack["https_port"])), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(
            b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 100000\r\n\r\n--b\r\n"
        )
        started = time.monotonic()
        answer = tls.recv(4096)
        elapsed = time.monotonic() - started
    # nginx logs a 408 and closes the connection without sending it.
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert BODY_TIMEOUT_S - 0.5 < elapsed < BODY_TIMEOUT_S + 10
