"""Connection discipline below the app: how many connections a client may open, and how long it
may take to send a request's head.

uvicorn has a keep-alive timeout but no time limit on a request's head and no per-client limit:
an idle connection that never sends a byte stays open forever, and a few addresses can hold
every file descriptor the process has. `GuardedH11Protocol` (uvicorn's h11 protocol, given to it
by `ghibli ingest` as `http=`) adds:

- a cap on open connections per client address bucket (IPv6 per /64, ingest/client_ip.py) and
  one per process; a connection over either is answered at once with a problem document
  (`429 too_many_connections` / `503 too_many_connections`, Retry-After) and closed. Trusted
  proxies (GHIBLI_TRUSTED_PROXIES) are exempt: nginx limits its clients itself (limit_conn);
- a deadline for the request line and headers (GHIBLI_HEADER_TIMEOUT_SECONDS), from the moment
  the connection opens or a keep-alive connection starts its next request: `408` and close.

The body's own deadline is enforced one level up, in the ASGI app (ingest/body_deadline.py).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from ingest.client_ip import ClientAddress, client_bucket
from jobs.logs import get_logger
from jobs.settings import Settings, load_settings

if TYPE_CHECKING:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

__all__ = ["ConnectionGuard", "GuardedH11Protocol", "configure_connections", "guard"]

log = get_logger("ingest.connections")

RETRY_AFTER_S = 5


@dataclass
class ConnectionGuard:
    """The limits and the open connections of this process, per client bucket."""

    max_per_client: int
    max_total: int
    header_timeout_s: float
    addresses: ClientAddress
    open: Counter[str]
    total: int = 0
    refused: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionGuard:
        return cls(
            max_per_client=settings.max_connections_per_client,
            max_total=settings.max_connections,
            header_timeout_s=settings.header_timeout_seconds,
            addresses=ClientAddress(settings.trusted_proxies, settings.ipv6_client_prefix),
            open=Counter(),
        )

    def admit(self, peer: str) -> tuple[str | None, bytes | None]:
        """(the bucket it counts in, or None for a trusted proxy; a refusal to send, or None)."""
        if self.max_total and self.total >= self.max_total:
            self.refused += 1
            return None, _refusal(503, "Too many connections", "The server has too many open connections.")
        if self.addresses.is_trusted_proxy(peer):
            self.total += 1
            return None, None
        bucket = client_bucket(peer, self.addresses.ipv6_prefix)
        if self.max_per_client and self.open[bucket] >= self.max_per_client:
            self.refused += 1
            return None, _refusal(
                429,
                "Too many connections",
                f"At most {self.max_per_client} open connections per client; close some and retry.",
            )
        self.open[bucket] += 1
        self.total += 1
        return bucket, None

    def release(self, bucket: str | None) -> None:
        self.total -= 1
        if bucket is not None:
            self.open[bucket] -= 1
            if self.open[bucket] <= 0:
                del self.open[bucket]


def _refusal(status: int, title: str, detail: str, *, code: str = "too_many_connections") -> bytes:
    body = json.dumps(
        {
            "type": f"urn:ghibli:problem:{code}",
            "title": title,
            "status": status,
            "detail": detail,
            "code": code,
        }
    ).encode()
    reason = {408: "Request Timeout", 429: "Too Many Requests", 503: "Service Unavailable"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/problem+json\r\n"
        f"content-length: {len(body)}\r\nretry-after: {RETRY_AFTER_S}\r\nconnection: close\r\n"
        "x-content-type-options: nosniff\r\n\r\n"
    )
    return head.encode() + body


_HEADER_TIMEOUT = _refusal(
    408, "Request Timeout", "The request's head did not arrive in time.", code="request_timeout"
)
_guard: ConnectionGuard | None = None


def configure_connections(settings: Settings) -> ConnectionGuard:
    """Set this process's limits (the app factory calls it; uvicorn builds protocols after it)."""
    global _guard  # noqa: PLW0603 - one guard per process, shared by every connection
    _guard = ConnectionGuard.from_settings(settings)
    return _guard


def guard() -> ConnectionGuard:
    return _guard if _guard is not None else configure_connections(load_settings())


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with connection caps and a deadline on each request's head."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._guard = guard()
        self._bucket: str | None = None
        self._admitted = False
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        peer = self.client[0] if self.client else ""
        self._bucket, refusal = self._guard.admit(peer)
        if refusal is not None:
            transport.write(refusal)
            transport.close()
            return
        self._admitted = True
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        if self._admitted:
            self._admitted = False
            self._guard.release(self._bucket)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            # Part of a head so far (a new request on a kept-alive connection starts the clock).
            if self._head_timer is None and not self.transport.is_closing():
                self._arm_head_timer()
        else:
            self._cancel_head_timer()

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self._guard.header_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            if self.conn.our_state is h11.IDLE:  # nothing sent on this request yet
                self.transport.write(_HEADER_TIMEOUT)
            self.transport.close()
