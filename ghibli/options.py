"""Click options shared by the commands that run or inspect the stack.

Options that are settings come from jobs.settings (same names, same environment variables, same
help, typed INTEGER/FLOAT/BOOLEAN like the setting), so `--help`, the table in docs/configuration.md
and the validation messages cannot drift apart; ranges are checked by the settings object.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click

from jobs.settings import Settings, SettingsError, iter_settings, load_settings

__all__ = ["COMMON", "CONSUMER", "DECODE", "INGEST", "build_settings", "configure_logs", "settings_options"]

F = TypeVar("F", bound=Callable[..., Any])

COMMON = (
    "redis_url",
    "redis_password_file",
    "key_prefix",
    "stream_name",
    "group_name",
    "job_ttl_seconds",
    "blob_ttl_seconds",
    "blob_dir",
    "log_level",
    "log_format",
)
# The decode sandbox (sandbox/): ingest decodes uploads, consumers check the Space's pictures.
DECODE = ("decode_workers", "decode_memory_mb", "decode_cpu_seconds", "decode_timeout_seconds")
CONSUMER = (
    "space",
    "space_plaintext_hosts",
    "call_timeout_seconds",
    "hf_tokens_file",
    "token_max_in_flight",
    "quota_cooldown_seconds",
    "gpu_seconds_per_call",
    "breaker_open_seconds",
    "concurrency",
    "consumer_name",
    "lease_seconds",
    "heartbeat_seconds",
    "heartbeat_timeout_seconds",
    "shutdown_grace_seconds",
    "max_attempts",
    "max_deliveries",
    "retry_base_seconds",
    "retry_cap_seconds",
    "metrics_port",
    "metrics_host",
)
INGEST = (
    "host",
    "port",
    "ingest_workers",
    "max_upload_bytes",
    "max_pixels",
    "max_jpeg_scans",
    "max_backlog",
    "max_unfinished_per_client",
    "max_stored_bytes_per_client",
    "rate_limit_submits",
    "rate_limit_requests",
    "trusted_proxies",
    "ipv6_client_prefix",
    "allowed_origins",
    "idempotency_ttl_seconds",
    "result_cache",
    "sse_keepalive_seconds",
    "header_timeout_seconds",
    "body_timeout_seconds",
    "keepalive_timeout_seconds",
    "max_connections_per_client",
    "max_connections",
    "max_streams_per_client",
    "max_streams",
    # API keys and webhook subscriptions (docs/webhooks.md); the keys themselves: environment only.
    "api_keys_file",
    "public_submissions",
    "webhook_allow_http",
    "webhook_allow_networks",
)


_CLICK_TYPES: dict[type, click.ParamType[Any]] = {int: click.INT, float: click.FLOAT, bool: click.BOOL}


def settings_options(*names: str, shown: Mapping[str, str] | None = None) -> Callable[[F], F]:
    """Click options for these settings; secrets are read from the environment only.

    `shown` replaces the default a command's help shows where the command itself picks the value
    (`up` starts its own Redis and Space), so help never lists a default that is not used."""
    infos = {info.name: info for info in iter_settings()}
    shown = shown or {}

    def decorate(fn: F) -> F:
        for name in reversed(names):
            info = infos[name]
            fn = click.option(
                info.option,
                name,
                type=_CLICK_TYPES.get(info.value_type, click.STRING),
                envvar=info.env,
                show_envvar=True,
                default=None,
                help=f"{info.help} [default: {shown.get(name, info.default)}]",
            )(fn)
        return fn

    return decorate


def build_settings(values: dict[str, Any]) -> Settings:
    """The settings from a command's option values (options that are not settings are left out)."""
    names = {info.name for info in iter_settings()}
    try:
        return load_settings({k: v for k, v in values.items() if k in names})
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


def configure_logs(settings: Settings) -> None:
    """Logs as the settings say; imported late so commands that never log stay fast to start."""
    from jobs.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)
