"""A delivery over real TLS goes to the checked address, yet is verified against the URL's host name.

The receiver is a real HTTPS server on loopback with a certificate from a test CA (trustme); the
Deliverer is the one `ghibli webhooks` runs, told to trust that CA.
"""

from __future__ import annotations

import ipaddress
import ssl

import pytest
import trustme
from standardwebhooks import Webhook

from jobs.webhook_signing import WebhookSecret
from jobs.webhook_url import UrlPolicy
from tests.webhook_kit import Delivery, Receiver
from webhooks.delivery import Deliverer

pytestmark = pytest.mark.anyio

LOOPBACK = UrlPolicy(allowed=(ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128")))


def server_context(ca: trustme.CA, *names: str, seen: list[str]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)

    def remember(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        seen.append(name or "")

    context.sni_callback = remember
    return context


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_https_delivery_is_pinned_and_checked_against_the_host_name() -> None:
    ca = trustme.CA()
    secret = WebhookSecret.generate()
    seen_sni: list[str] = []
    with Receiver(tls=server_context(ca, "localhost", seen=seen_sni)) as receiver:
        deliverer = Deliverer(LOOPBACK, 10, verify=client_context(ca))
        try:
            result = await deliverer.attempt(
                receiver.url("/hooks/ghibli?source=test", host="localhost"),
                "msg_1_2",
                b'{"id":"1"}',
                (secret,),
            )
        finally:
            await deliverer.aclose()
        got = receiver.received()
    assert result.delivered, result
    assert result.status == 200
    assert len(got) == 1
    # Sent to 127.0.0.1 (the checked address), but as localhost: Host header, SNI and certificate.
    assert got[0].headers["host"] == f"localhost:{receiver.port}"
    assert seen_sni == ["localhost"]
    assert Webhook(secret.serialize()).verify(got[0].body, got[0].headers) == {"id": "1"}


async def test_a_certificate_for_another_name_fails_even_at_the_right_address() -> None:
    ca = trustme.CA()
    with Receiver(tls=server_context(ca, "other.example", seen=[])) as receiver:
        deliverer = Deliverer(LOOPBACK, 10, verify=client_context(ca))
        try:
            result = await deliverer.attempt(
                receiver.url(host="localhost"), "msg_1_2", b"{}", (WebhookSecret.generate(),)
            )
        finally:
            await deliverer.aclose()
        assert receiver.received() == []
    assert result.outcome == "network_error"
    assert result.status == 0


async def test_redirects_are_not_followed_and_refused_addresses_are_not_called() -> None:
    def answer(_headers: dict[str, str], _body: bytes, _earlier: list[Delivery]) -> int:
        return 307

    with Receiver(answer) as receiver:
        deliverer = Deliverer(UrlPolicy(allow_http=True, allowed=LOOPBACK.allowed), 10)
        strict = Deliverer(UrlPolicy(allow_http=True), 10)
        try:
            redirected = await deliverer.attempt(
                receiver.url(), "msg_1_2", b"{}", (WebhookSecret.generate(),)
            )
            refused = await strict.attempt(receiver.url(), "msg_1_2", b"{}", (WebhookSecret.generate(),))
        finally:
            await deliverer.aclose()
            await strict.aclose()
        assert len(receiver.received()) == 1  # the redirect was not followed, the refused one never sent
    assert (redirected.outcome, redirected.status, redirected.error) == ("http_error", 307, "http_307")
    assert (refused.outcome, refused.error) == ("forbidden", "webhook_url_forbidden")
