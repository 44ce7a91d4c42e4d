"""Which process reads which setting, and the few that most people set.

`jobs.settings.Settings` holds every setting in one typed struct (one parser, one validation, one
place a variable's name is spelled). This module says who each setting is for: the CLI gives each
command the options of its roles (ghibli/options.py), and docs/configuration.md lists the
essential settings first and the rest by role (scripts/config_docs.py). tests/test_config_docs.py
checks every setting has a role.
"""

from __future__ import annotations

__all__ = ["ESSENTIAL", "ROLES", "ROLE_TITLES", "roles_of"]

ROLES: dict[str, tuple[str, ...]] = {
    # Every process that talks to Redis: the stack's processes and the operator's tools.
    "common": (
        "redis_url",
        "redis_password_file",
        "redis_sentinel_password_file",
        "durable_replicas",
        "durable_timeout_ms",
        "durable_fsync",
        "key_prefix",
        "stream_name",
        "group_name",
        "job_ttl_seconds",
        "blob_ttl_seconds",
        "blob_dir",
        "log_level",
        "log_format",
    ),
    # The decode sandbox: ingest decodes uploads, consumers check the Space's pictures.
    "decode": ("decode_workers", "decode_memory_mb", "decode_cpu_seconds", "decode_timeout_seconds"),
    "consumer": (
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
    ),
    "ingest": (
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
        "cors_origins",
        "ipv6_client_prefix",
        "allowed_origins",
        "idempotency_ttl_seconds",
        "result_cache",
        "sse_keepalive_seconds",
        "long_poll_seconds",
        "header_timeout_seconds",
        "body_timeout_seconds",
        "keepalive_timeout_seconds",
        "max_connections_per_client",
        "max_connections",
        "max_streams_per_client",
        "max_streams",
        "admin_secret",
        "admin_secret_in_query",
        # API keys and webhook subscriptions (docs/webhooks.md); the keys themselves: environment only.
        "api_keys",
        "api_keys_file",
        "public_submissions",
        "webhook_secret",
        "webhook_allow_http",
        "webhook_allow_networks",
    ),
    "webhooks": (
        "api_keys",
        "api_keys_file",
        "webhook_secret",
        "webhook_allow_http",
        "webhook_allow_networks",
        "webhook_timeout_seconds",
        "webhook_retry_base_seconds",
        "webhook_retry_cap_seconds",
        "webhook_retry_window_seconds",
        "webhook_progress_interval_seconds",
        "webhook_concurrency",
        "webhook_metrics_port",
        "metrics_host",
    ),
    "exporter": ("lease_seconds", "metrics_host", "exporter_port"),
}

ROLE_TITLES = {
    "common": "Every process (Redis, keys, storage, logs)",
    "ingest": "Ingest (`ghibli ingest`)",
    "consumer": "Consumers (`ghibli consume`)",
    "decode": "Decode sandbox (ingest and consumers)",
    "webhooks": "Webhook dispatcher (`ghibli webhooks`)",
    "exporter": "Metrics exporter (`ghibli metrics-exporter`)",
}

# What most deployments set; every other setting has a default that suits most.
ESSENTIAL = (
    "redis_url",
    "redis_password_file",
    "blob_dir",
    "log_format",
    "space",
    "hf_tokens_file",
    "concurrency",
    "metrics_port",
    "host",
    "port",
    "ingest_workers",
    "trusted_proxies",
    "admin_secret",
    "api_keys_file",
    "public_submissions",
)


def roles_of(name: str) -> list[str]:
    """The roles that read a setting, in ROLES order."""
    return [role for role, names in ROLES.items() if name in names]
