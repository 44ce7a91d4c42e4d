"""One webhook delivery attempt: check the address again, sign, POST to the checked address.

The URL's host is resolved and every address checked (jobs/webhook_url.py) right before the
attempt; the request then goes to the first checked address, with the host in the Host header and
in TLS (SNI and the certificate's name), so a DNS answer that changes between the check and the
connection cannot redirect it. Connections are not pooled: a pooled connection made for one host
could otherwise carry a request for another name that resolves to the same address. Redirects
are not followed (a 3xx is a failure, as Standard Webhooks says) and proxies from the environment
are not used.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass

import anyio
import httpx

from jobs.webhook_signing import WebhookSecret, signature_header
from jobs.webhook_url import UrlPolicy, UrlRefused, parse_webhook_url, resolve_target

__all__ = ["AttemptResult", "Deliverer"]

# A receiver's answer is read only this far (it is not used; reading a little lets it finish).
_ANSWER_BYTES = 16 * 1024
USER_AGENT = "ghibli-pipeline-webhooks/1"


@dataclass(frozen=True, slots=True)
class AttemptResult:
    outcome: str  # delivered | http_error | network_error | forbidden
    status: int = 0  # the HTTP status, 0 without an answer
    error: str = ""  # short and safe to show: http_500, timeout, ConnectError, webhook_url_forbidden
    retry_after_s: float | None = None  # the receiver's Retry-After, in seconds
    host: str = ""

    @property
    def delivered(self) -> bool:
        return self.outcome == "delivered"

    @property
    def gone(self) -> bool:
        """410 Gone: the receiver wants no more webhooks (Standard Webhooks: stop sending)."""
        return self.status == 410


def _retry_after(value: str | None) -> float | None:
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())


class Deliverer:
    def __init__(self, policy: UrlPolicy, timeout_s: float, *, verify: ssl.SSLContext | bool = True) -> None:
        self._policy = policy
        self._timeout_s = timeout_s
        self._client = httpx.AsyncClient(
            trust_env=False,
            follow_redirects=False,
            verify=verify,
            timeout=httpx.Timeout(timeout_s, connect=min(5.0, timeout_s)),
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"user-agent": USER_AGENT},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def attempt(
        self, url: str, msg_id: str, body: bytes, secrets: tuple[WebhookSecret, ...]
    ) -> AttemptResult:
        try:
            target = parse_webhook_url(url, self._policy)
            addresses = await resolve_target(target, self._policy)
        except UrlRefused as exc:
            return AttemptResult("forbidden", error=exc.code)
        timestamp = int(time.time())
        headers = {
            "host": target.host_header,
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(secrets, msg_id, timestamp, body),
        }
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        try:
            # httpx's time-outs are per phase; this bounds the whole attempt.
            with anyio.fail_after(self._timeout_s + 1):
                async with self._client.stream(
                    "POST",
                    target.pinned_url(addresses[0]),
                    content=body,
                    headers=headers,
                    extensions=extensions,
                ) as response:
                    read = 0
                    async for chunk in response.aiter_raw():
                        read += len(chunk)
                        if read >= _ANSWER_BYTES:
                            break
        except (httpx.TimeoutException, TimeoutError):
            return AttemptResult("network_error", error="timeout", host=target.host)
        except httpx.HTTPError as exc:
            return AttemptResult("network_error", error=type(exc).__name__, host=target.host)
        if 200 <= response.status_code < 300:
            return AttemptResult("delivered", status=response.status_code, host=target.host)
        return AttemptResult(
            "http_error",
            status=response.status_code,
            error=f"http_{response.status_code}",
            retry_after_s=_retry_after(response.headers.get("retry-after")),
            host=target.host,
        )
