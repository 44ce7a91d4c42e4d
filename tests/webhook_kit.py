"""Helpers of the webhook and API key tests: a real HTTP receiver on loopback, a key with its entry,
settings that allow the receiver, and a scan of Redis for strings that must never be stored."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from jobs.apikeys import ApiKey, entry_line, key_digest, new_key
from jobs.webhook_signing import WebhookSecret
from tests.procs import RedisServer, base_env, free_port


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: bytes
    at: float
    answered: int

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


Answer = Callable[[dict[str, str], bytes, list[Delivery]], int]


class Receiver:
    """A real HTTP(S) server on 127.0.0.1 (its own thread) recording every request.

    `answer(headers, body, earlier)` picks the status code of each request (default 200).
    """

    def __init__(self, answer: Answer | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self._answer = answer or (lambda _h, _b, _e: 200)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    status = receiver._answer(headers, body, list(receiver.deliveries))
                    receiver.deliveries.append(Delivery(headers, body, time.monotonic(), status))
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def received(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)


@dataclass
class AppKey:
    """A key as `ghibli keys create` makes it: the plain key (the app's) and its entry (ingest's)."""

    plain: str
    entry: ApiKey
    secret: WebhookSecret | None = None
    line: str = field(init=False)

    def __post_init__(self) -> None:
        self.line = entry_line(self.entry)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.plain}"}

    @property
    def whsec(self) -> str:
        assert self.secret is not None
        return self.secret.serialize()


def make_key(key_id: str, *, rate: int = 60, max_unfinished: int = 20, secret: bool = True) -> AppKey:
    plain = new_key()
    webhook_secret = WebhookSecret.generate() if secret else None
    entry = ApiKey(
        id=key_id,
        digest=key_digest(plain),
        rate_per_minute=rate,
        max_unfinished=max_unfinished,
        webhook_secrets=(webhook_secret,) if webhook_secret else (),
    )
    return AppKey(plain, entry, webhook_secret)


def webhook_env(redis: RedisServer, *keys: AppKey, **extra: str) -> dict[str, str]:
    """Settings of every process of a webhook test: the loopback receiver allowlisted, quick retries."""
    values = {
        "REDIS_URL": redis.url,
        "GHIBLI_API_KEYS": ";".join(k.line for k in keys),
        "GHIBLI_WEBHOOK_ALLOW_HTTP": "true",
        "GHIBLI_WEBHOOK_ALLOW_NETWORKS": "127.0.0.1/32",
        "GHIBLI_WEBHOOK_RETRY_BASE_SECONDS": "0.3",
        "GHIBLI_WEBHOOK_RETRY_CAP_SECONDS": "1",
        "GHIBLI_WEBHOOK_TIMEOUT_SECONDS": "10",
        "GHIBLI_WEBHOOK_PROGRESS_INTERVAL_SECONDS": "0.2",
        "GHIBLI_RATE_LIMIT_SUBMITS": "0",
        "GHIBLI_RATE_LIMIT_REQUESTS": "0",
        "GHIBLI_MAX_BACKLOG": "0",
        "GHIBLI_MAX_UNFINISHED_PER_CLIENT": "0",
        "GHIBLI_MAX_STORED_BYTES_PER_CLIENT": "0",
        **extra,
    }
    return base_env(**values)


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
