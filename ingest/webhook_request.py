"""The webhook part of a submission: check `webhook_url` / `webhook_events` and subscribe the job.

Refusals are 422 problems whose `code` says what to fix: invalid_webhook_url (syntax, scheme,
credentials), webhook_url_forbidden (it resolves to a loopback, private, link-local or reserved
address not on GHIBLI_WEBHOOK_ALLOW_NETWORKS), webhook_host_unresolvable, invalid_webhook_events,
webhooks_unavailable (nothing to sign with: the key has no webhook secret and the server none).
The address is checked again before every delivery (webhooks/delivery.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ingest.problems import Problem
from jobs.apikeys import KeyRing, webhook_secrets_for
from jobs.settings import Settings
from jobs.webhook_signing import WebhookSecret
from jobs.webhook_url import UrlPolicy, UrlRefused, parse_webhook_url, resolve_target
from jobs.webhooks import WebhookKeys, parse_events, subscription_fields

if TYPE_CHECKING:
    from ingest.auth import Caller  # auth imports services, which imports this module

__all__ = ["WebhookIntake"]


class WebhookIntake:
    """Not a dataclass on purpose: Litestar's signature model would try to validate its fields."""

    def __init__(
        self,
        keys: WebhookKeys,
        policy: UrlPolicy,
        fallback_secret: WebhookSecret | None,
        *,
        keys_configured: bool,
        ttl_s: int,
    ) -> None:
        self.keys = keys
        self.policy = policy
        self.fallback_secret = fallback_secret
        self.keys_configured = keys_configured
        self.ttl_s = ttl_s  # of a job's outbox: the job's lifetime plus the retry window

    @classmethod
    def from_settings(cls, settings: Settings, ring: KeyRing) -> WebhookIntake:
        return cls(
            keys=WebhookKeys(settings.key_prefix),
            policy=UrlPolicy.from_settings(settings),
            fallback_secret=WebhookSecret.parse(settings.webhook_secret) if settings.webhook_secret else None,
            keys_configured=ring.configured,
            ttl_s=int(settings.job_ttl_seconds + settings.webhook_retry_window_seconds + 3600),
        )

    async def subscription(
        self, job_id: str, url: str | None, events: str | None, caller: Caller
    ) -> dict[str, str]:
        """Job hash fields of the subscription ({} without webhook_url); raises 422 Problems."""
        url = (url or "").strip()
        if not url:
            if (events or "").strip():
                raise _refused(
                    "invalid_webhook_events", "webhook_events needs a webhook_url.", "webhook_events"
                )
            return {}
        try:
            wanted = parse_events(events)
        except ValueError as exc:
            raise _refused("invalid_webhook_events", f"webhook_events: {exc}.", "webhook_events") from None
        if caller.key is None and self.keys_configured:
            raise _refused(
                "webhooks_unavailable",
                "Webhooks are signed with your API key's secret: submit with an API key to use them.",
                "webhook_url",
            )
        if not webhook_secrets_for(caller.key, self.fallback_secret):
            raise _refused(
                "webhooks_unavailable",
                "This server has no secret to sign your webhooks with (the API key has no webhook_secret); "
                "ask the operator for one.",
                "webhook_url",
            )
        try:
            target = parse_webhook_url(url, self.policy)
            await resolve_target(target, self.policy)
        except UrlRefused as exc:
            raise _refused(exc.code, exc.message, "webhook_url") from None
        return subscription_fields(self.keys, job_id, url, wanted, ttl_s=self.ttl_s)


def _refused(code: str, detail: str, field: str) -> Problem:
    return Problem(422, code, "Webhook not accepted", detail, field=field)
