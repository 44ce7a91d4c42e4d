"""Standard Webhooks signatures: secrets in the `whsec_<base64>` form and `v1,<base64 HMAC-SHA256>`.

The signed content is `{webhook-id}.{webhook-timestamp}.{body}` (the exact body bytes sent). Each
secret yields one `v1,...` signature; several secrets (a rotation) are sent space-separated in one
`webhook-signature` header, and a receiver accepts the request if any of them verifies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

__all__ = [
    "SECRET_PREFIX",
    "SecretError",
    "WebhookSecret",
    "sign",
    "signature_header",
]

SECRET_PREFIX = "whsec_"  # noqa: S105 - the spec's prefix, not a secret
# The spec: symmetric secrets are random, at least 24 bytes (192 bits) and at most 64.
SECRET_MIN_BYTES = 24
SECRET_MAX_BYTES = 64
NEW_SECRET_BYTES = 32


class SecretError(ValueError):
    """A webhook secret that is not `whsec_` + base64 of 24-64 bytes."""


@dataclass(frozen=True, slots=True, repr=False)
class WebhookSecret:
    """A signing key; its repr never shows it."""

    key: bytes

    def __repr__(self) -> str:
        return "WebhookSecret(***)"

    @classmethod
    def parse(cls, text: str) -> WebhookSecret:
        if not text.startswith(SECRET_PREFIX):
            raise SecretError(f"a webhook secret starts with {SECRET_PREFIX!r}")
        encoded = text[len(SECRET_PREFIX) :]
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise SecretError("a webhook secret is whsec_ followed by base64") from None
        if not SECRET_MIN_BYTES <= len(key) <= SECRET_MAX_BYTES:
            raise SecretError(
                f"a webhook secret holds {SECRET_MIN_BYTES}-{SECRET_MAX_BYTES} random bytes, "
                f"this one {len(key)}"
            )
        return cls(key)

    @classmethod
    def generate(cls) -> WebhookSecret:
        return cls(secrets.token_bytes(NEW_SECRET_BYTES))

    def serialize(self) -> str:
        """The `whsec_...` form operators configure and receivers verify with."""
        return SECRET_PREFIX + base64.b64encode(self.key).decode()


def sign(secret: WebhookSecret, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature of `{msg_id}.{timestamp}.{body}`."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secrets_: tuple[WebhookSecret, ...], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one signature per secret, space-separated (rotation)."""
    if not secrets_:
        raise ValueError("no secret to sign with")
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets_)
