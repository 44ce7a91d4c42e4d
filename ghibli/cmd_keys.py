"""`ghibli keys create`: a new API key, printed once, and the entry that configures it."""

from __future__ import annotations

import click

__all__ = ["keys"]


@click.group()
def keys() -> None:
    """API keys for apps that submit jobs (GHIBLI_API_KEYS / GHIBLI_API_KEYS_FILE)."""


@keys.command("create")
@click.option(
    "--id",
    "key_id",
    required=True,
    help="Name of the key (1-32 of a-z 0-9 _ -): what logs, metrics and admin views show.",
)
@click.option(
    "--rate",
    type=click.IntRange(0),
    default=60,
    show_default=True,
    help="Submissions per minute with this key (0: no limit).",
)
@click.option(
    "--max-unfinished",
    type=click.IntRange(0),
    default=20,
    show_default=True,
    help="Jobs of this key that may be unfinished at once (0: no limit).",
)
@click.option(
    "--webhook-secret/--no-webhook-secret",
    default=True,
    show_default=True,
    help="Also make a secret (whsec_...) that signs this key's webhooks.",
)
def create(key_id: str, rate: int, max_unfinished: int, webhook_secret: bool) -> None:
    """Make a key. The key is shown once and stored nowhere: only its SHA-256 is in the entry."""
    from jobs.apikeys import ApiKey, entry_line, key_digest, new_key, parse_entries
    from jobs.webhook_signing import WebhookSecret

    plain = new_key()
    key = ApiKey(
        id=key_id,
        digest=key_digest(plain),
        rate_per_minute=rate,
        max_unfinished=max_unfinished,
        webhook_secrets=(WebhookSecret.generate(),) if webhook_secret else (),
    )
    line = entry_line(key)
    try:
        parse_entries(line)  # the same check ingest makes at start-up
    except ValueError as exc:
        raise click.UsageError(str(exc).removeprefix("entry 1: ")) from None
    click.echo("API key (shown once; give it to the app, it is not stored anywhere):")
    click.echo(f"  {plain}")
    if key.webhook_secrets:
        click.echo("Webhook signing secret (the app verifies deliveries with it; keep it secret too):")
        click.echo(f"  {key.webhook_secrets[0].serialize()}")
    click.echo(
        "Entry to configure (a line of GHIBLI_API_KEYS_FILE, or in GHIBLI_API_KEYS, ';' between entries):"
    )
    click.echo(f"  {line}")
