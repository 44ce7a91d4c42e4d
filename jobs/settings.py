"""Every setting of every role, in one typed object read from the environment.

Each field carries its environment variable and help text in its metadata, so the CLI options,
the table in docs/configuration.md and the validation message all come from this one definition. A
bad value stops the process with a message that names the variable.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit, urlunsplit

import msgspec
from msgspec import Meta

from jobs.redis_url import parse_redis_url, redacted_url

__all__ = ["SettingInfo", "Settings", "SettingsError", "iter_settings", "load_settings", "parse_origins"]


def _m(env: str, help_: str, **constraints: Any) -> Meta:
    return Meta(description=help_, extra={"env": env}, **constraints)


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    """Configuration shared by ingest, consumers and the tools. Secrets are masked in repr."""

    # --- Redis and the key schema -----------------------------------------------------------
    redis_url: Annotated[
        str,
        _m(
            "REDIS_URL",
            "Redis URL: redis://, rediss://, unix://, redis+sentinel://host:26379,host:26379/mymaster/0 "
            "or redis+cluster://host:6379,host:6379 (docs/redis-ha.md).",
        ),
    ] = "redis://127.0.0.1:6379/0"
    redis_password_file: Annotated[
        str,
        _m(
            "REDIS_PASSWORD_FILE",
            "File holding the Redis password (a container secret); replaces the password in REDIS_URL "
            "(with Sentinel or Cluster: the data nodes' password).",
        ),
    ] = ""
    redis_sentinel_password_file: Annotated[
        str,
        _m(
            "REDIS_SENTINEL_PASSWORD_FILE",
            "File holding the sentinels' own password (their requirepass), for a redis+sentinel:// URL.",
        ),
    ] = ""
    durable_replicas: Annotated[
        int,
        _m(
            "GHIBLI_DURABLE_REPLICAS",
            "Replicas that must have a submission before ingest answers 202, and a job's end before a "
            "consumer counts it done (WAIT); 0 = off. A fail-over then loses no accepted job.",
            ge=0,
            le=16,
        ),
    ] = 0
    durable_timeout_ms: Annotated[
        int,
        _m(
            "GHIBLI_DURABLE_TIMEOUT_MS",
            "How long to wait for those replicas; a submission not confirmed in time gets 503 "
            "not_durable (retry it with the same Idempotency-Key).",
            ge=1,
            le=60_000,
        ),
    ] = 1_000
    durable_fsync: Annotated[
        bool,
        _m(
            "GHIBLI_DURABLE_FSYNC",
            "Also wait until the primary (and those replicas) wrote it to the append-only file "
            "(WAITAOF, Redis >= 7.2; refused at start-up on an older Redis).",
        ),
    ] = False
    key_prefix: Annotated[
        str,
        _m("GHIBLI_KEY_PREFIX", "Prefix of every Redis key; a {hash tag} so one slot holds all."),
    ] = "{ghibli}:"
    stream_name: Annotated[str, _m("GHIBLI_STREAM", "Name of the jobs stream (after the prefix).")] = "jobs"
    group_name: Annotated[str, _m("GHIBLI_GROUP", "Consumer group that works the jobs stream.")] = "workers"
    job_ttl_seconds: Annotated[
        int, _m("GHIBLI_JOB_TTL_SECONDS", "How long a job's status is kept.", ge=60)
    ] = 86_400
    blob_ttl_seconds: Annotated[
        int, _m("GHIBLI_BLOB_TTL_SECONDS", "How long input photos and results are kept.", ge=60)
    ] = 3_600
    blob_dir: Annotated[
        str, _m("GHIBLI_BLOB_DIR", "Directory for photos and results; empty keeps them in Redis.")
    ] = ""

    # --- the Space ------------------------------------------------------------------------
    space: Annotated[
        str, _m("GHIBLI_SPACE", "Gradio app to call: a Hugging Face Space id or an http(s) URL.")
    ] = "jamesliu1217/EasyControl_Ghibli"
    space_plaintext_hosts: Annotated[
        str,
        _m(
            "GHIBLI_SPACE_PLAINTEXT_HOSTS",
            "Comma list of host names, addresses or CIDRs an http:// GHIBLI_SPACE may be on although HF "
            "tokens are configured (e.g. `space` on the compose network); loopback always may. Any "
            "other plain-http Space with tokens stops the consumer at start.",
        ),
    ] = ""
    call_timeout_seconds: Annotated[
        float, _m("GHIBLI_CALL_TIMEOUT_SECONDS", "Deadline of one Space call.", gt=0)
    ] = 600.0

    # --- HF tokens and ZeroGPU quota (the tokens themselves are read from the environment by
    # consumers/tokens.py and are never settings: settings are printed and passed as options) ---
    hf_tokens_file: Annotated[
        str,
        _m("HUGGING_FACE_TOKENS_FILE", "File with one HF token per line (container secrets); # comments."),
    ] = ""
    token_max_in_flight: Annotated[
        int,
        _m(
            "GHIBLI_TOKEN_MAX_IN_FLIGHT",
            "Space calls one HF token (or the anonymous IP) runs at once, across all consumers; "
            "0 = auto: 1 with HF tokens or a Hugging Face Space id (ZeroGPU quota), "
            "else 1024 (anonymous calls to a self-hosted URL).",
            ge=0,
            le=1024,
        ),
    ] = 0
    quota_cooldown_seconds: Annotated[
        float,
        _m(
            "GHIBLI_QUOTA_COOLDOWN_SECONDS",
            "How long a token rests after a ZeroGPU quota error that gives no 'Try again in' time.",
            gt=0,
        ),
    ] = 3_600.0
    gpu_seconds_per_call: Annotated[
        float,
        _m(
            "GHIBLI_GPU_SECONDS_PER_CALL",
            "GPU seconds a call is counted as requesting, until the Space's quota message says.",
            ge=0,
        ),
    ] = 60.0
    breaker_open_seconds: Annotated[
        float,
        _m(
            "GHIBLI_BREAKER_OPEN_SECONDS",
            "First pause of claiming when the Space is paused or broken; doubles up to 10 min.",
            gt=0,
        ),
    ] = 30.0

    # --- consumers ------------------------------------------------------------------------
    concurrency: Annotated[
        int, _m("GHIBLI_CONCURRENCY", "Jobs one consumer process runs at once.", ge=1, le=256)
    ] = 2
    consumer_name: Annotated[
        str, _m("GHIBLI_CONSUMER_NAME", "Consumer name in the group; empty means host-pid.")
    ] = ""
    lease_seconds: Annotated[
        float,
        _m(
            "GHIBLI_LEASE_SECONDS",
            "Idle time after which another consumer takes a job whose consumer stopped renewing it.",
            ge=1,
        ),
    ] = 30.0
    heartbeat_seconds: Annotated[
        float,
        _m(
            "GHIBLI_HEARTBEAT_SECONDS",
            "How often a consumer refreshes its liveness key and looks for dead consumers.",
            gt=0,
        ),
    ] = 1.0
    heartbeat_timeout_seconds: Annotated[
        float,
        _m(
            "GHIBLI_HEARTBEAT_TIMEOUT_SECONDS",
            "Silence after which a consumer counts as dead and its jobs are taken over at once.",
            gt=0,
        ),
    ] = 5.0
    shutdown_grace_seconds: Annotated[
        float,
        _m("GHIBLI_SHUTDOWN_GRACE_SECONDS", "On SIGTERM, how long running calls may finish.", ge=0),
    ] = 30.0
    max_attempts: Annotated[
        int, _m("GHIBLI_MAX_ATTEMPTS", "Failed calls after which a job is dead-lettered.", ge=1)
    ] = 5
    max_deliveries: Annotated[
        int,
        _m("GHIBLI_MAX_DELIVERIES", "Deliveries of one entry (crashes) before dead-lettering.", ge=1),
    ] = 10
    retry_base_seconds: Annotated[
        float, _m("GHIBLI_RETRY_BASE_SECONDS", "First retry back-off (doubles each time).", gt=0)
    ] = 2.0
    retry_cap_seconds: Annotated[float, _m("GHIBLI_RETRY_CAP_SECONDS", "Longest retry back-off.", gt=0)] = (
        300.0
    )
    metrics_port: Annotated[
        int, _m("GHIBLI_METRICS_PORT", "Consumer /metrics port; 0 turns it off.", ge=0, le=65535)
    ] = 0
    metrics_host: Annotated[
        str, _m("GHIBLI_METRICS_HOST", "Address the consumer and exporter /metrics listen on.")
    ] = "127.0.0.1"
    exporter_port: Annotated[
        int,
        _m("GHIBLI_EXPORTER_PORT", "Port of `ghibli metrics-exporter` (the queue's gauges).", ge=1, le=65535),
    ] = 9102

    # --- untrusted images: the decode sandbox (sandbox/, docs/security.md) --------------------
    decode_workers: Annotated[
        int,
        _m(
            "GHIBLI_DECODE_WORKERS",
            "Decode worker processes per ingest or consumer process; 0 = auto: one per core for "
            "ingest (shared by its uvicorn workers) as far as half the available memory allows, 1 for "
            "a consumer (it only checks pictures of at most 1024x1024).",
            ge=0,
            le=64,
        ),
    ] = 0
    decode_memory_mb: Annotated[
        int,
        _m("GHIBLI_DECODE_MEMORY_MB", "Address space one decode worker may use (RLIMIT_AS), in MB.", ge=128),
    ] = 1024
    decode_cpu_seconds: Annotated[
        int,
        _m("GHIBLI_DECODE_CPU_SECONDS", "CPU seconds one decode may use (RLIMIT_CPU).", ge=1, le=600),
    ] = 5
    decode_timeout_seconds: Annotated[
        float,
        _m("GHIBLI_DECODE_TIMEOUT_SECONDS", "Wall-clock deadline of one decode.", gt=0, le=600),
    ] = 10.0

    # --- ingest ---------------------------------------------------------------------------
    host: Annotated[str, _m("GHIBLI_HOST", "Address ingest listens on.")] = "127.0.0.1"
    port: Annotated[int, _m("GHIBLI_PORT", "Port ingest listens on.", ge=1, le=65535)] = 8000
    ingest_workers: Annotated[int, _m("GHIBLI_INGEST_WORKERS", "Ingest worker processes.", ge=1, le=64)] = 1
    max_upload_bytes: Annotated[
        int, _m("GHIBLI_MAX_UPLOAD_BYTES", "Largest accepted photo, in bytes.", ge=1024)
    ] = 20_000_000
    max_pixels: Annotated[int, _m("GHIBLI_MAX_PIXELS", "Largest accepted photo, in pixels.", ge=1)] = (
        40_000_000
    )
    max_jpeg_scans: Annotated[
        int,
        _m(
            "GHIBLI_MAX_JPEG_SCANS",
            "Most scans a JPEG may have (each costs a pass over every block; encoders write 1-20).",
            ge=1,
            le=10_000,
        ),
    ] = 100
    max_backlog: Annotated[
        int,
        _m(
            "GHIBLI_MAX_BACKLOG",
            "Unfinished queued work (stream lag + pending + delayed retries) above which "
            "submissions get 503 + Retry-After; 0 turns the check off.",
            ge=0,
        ),
    ] = 1_000
    max_unfinished_per_client: Annotated[
        int,
        _m(
            "GHIBLI_MAX_UNFINISHED_PER_CLIENT",
            "Unfinished jobs one anonymous client (address; IPv6 per GHIBLI_IPV6_CLIENT_PREFIX) may "
            "have at once (API keys have their own max_unfinished); 0 = no limit.",
            ge=0,
        ),
    ] = 10
    max_stored_bytes_per_client: Annotated[
        int,
        _m(
            "GHIBLI_MAX_STORED_BYTES_PER_CLIENT",
            "Bytes of photos one client (address or API key) may have stored per window of "
            "GHIBLI_BLOB_TTL_SECONDS, counted from its first upload; 0 = no limit.",
            ge=0,
        ),
    ] = 200_000_000
    rate_limit_submits: Annotated[
        int,
        _m(
            "GHIBLI_RATE_LIMIT_SUBMITS",
            "Submissions per client per minute (token bucket, shared by all ingest processes); 0 = off.",
            ge=0,
        ),
    ] = 30
    rate_limit_requests: Annotated[
        int,
        _m(
            "GHIBLI_RATE_LIMIT_REQUESTS",
            "Other API requests per client per minute (status, events, results); 0 = off.",
            ge=0,
        ),
    ] = 600
    trusted_proxies: Annotated[
        str,
        _m(
            "GHIBLI_TRUSTED_PROXIES",
            "Comma list of proxy addresses/CIDRs whose X-Forwarded-For is believed; empty trusts none.",
        ),
    ] = ""
    cors_origins: Annotated[
        str,
        _m(
            "GHIBLI_CORS_ORIGINS",
            "Comma list of origins (https://app.example.com) whose pages may call the API from the browser "
            "(CORS); * for any; empty: none. Credentials (cookies) are never allowed.",
        ),
    ] = ""
    ipv6_client_prefix: Annotated[
        int,
        _m(
            "GHIBLI_IPV6_CLIENT_PREFIX",
            "IPv6 clients are counted per network of this prefix length for every per-client limit "
            "(one home or phone gets a whole /64; 128 counts single addresses).",
            ge=32,
            le=128,
        ),
    ] = 64
    allowed_origins: Annotated[
        str,
        _m(
            "GHIBLI_ALLOWED_ORIGINS",
            "Comma list of other sites' origins (https://app.example) whose pages may POST or DELETE "
            "here from a browser; others get 403 cross_site_request (the page served here always may).",
        ),
    ] = ""
    idempotency_ttl_seconds: Annotated[
        int,
        _m("GHIBLI_IDEMPOTENCY_TTL_SECONDS", "How long an Idempotency-Key maps to its job.", ge=60),
    ] = 86_400
    result_cache: Annotated[
        bool,
        _m("GHIBLI_RESULT_CACHE", "Reuse the result of the same photo with the same parameters and seed."),
    ] = True
    sse_keepalive_seconds: Annotated[
        float,
        _m("GHIBLI_SSE_KEEPALIVE_SECONDS", "Interval of the keep-alive comments on open SSE streams.", gt=0),
    ] = 15.0
    long_poll_seconds: Annotated[
        float,
        _m(
            "GHIBLI_LONG_POLL_SECONDS",
            "Longest a status check is held open waiting for the job to change (the compatibility "
            "check route; GET /v1/jobs/{id}?wait=); keep it under every proxy's read time-out; 0 = answer "
            "at once.",
            ge=0,
            le=300,
        ),
    ] = 25.0
    header_timeout_seconds: Annotated[
        float,
        _m(
            "GHIBLI_HEADER_TIMEOUT_SECONDS",
            "Time a client has to send a request's line and headers, and the longest pause while "
            "it sends a body; then 408 and the connection is closed.",
            gt=0,
        ),
    ] = 10.0
    body_timeout_seconds: Annotated[
        float,
        _m(
            "GHIBLI_BODY_TIMEOUT_SECONDS", "Time a client has to send a whole request body (an upload).", gt=0
        ),
    ] = 120.0
    keepalive_timeout_seconds: Annotated[
        int,
        _m("GHIBLI_KEEPALIVE_TIMEOUT_SECONDS", "How long an idle kept-alive connection stays open.", ge=1),
    ] = 5
    max_connections_per_client: Annotated[
        int,
        _m(
            "GHIBLI_MAX_CONNECTIONS_PER_CLIENT",
            "Open connections per client address (IPv6: per GHIBLI_IPV6_CLIENT_PREFIX) and ingest "
            "process; trusted proxies are exempt; 0 = no limit.",
            ge=0,
        ),
    ] = 64
    max_connections: Annotated[
        int, _m("GHIBLI_MAX_CONNECTIONS", "Open connections per ingest process; 0 = no limit.", ge=0)
    ] = 4_096
    max_streams_per_client: Annotated[
        int,
        _m(
            "GHIBLI_MAX_STREAMS_PER_CLIENT",
            "Held-open responses (SSE streams, long polls) per client and ingest process; over it: "
            "429 and clients poll; 0 = no limit.",
            ge=0,
        ),
    ] = 16
    max_streams: Annotated[
        int,
        _m("GHIBLI_MAX_STREAMS", "Held-open responses per ingest process; over it: 503; 0 = no limit.", ge=0),
    ] = 2_000
    admin_secret: Annotated[
        str, _m("ADMIN_SECRET", "Bearer secret of the admin routes; empty disables them.")
    ] = ""
    admin_secret_in_query: Annotated[
        bool,
        _m(
            "GHIBLI_ADMIN_SECRET_IN_QUERY",
            "Also accept ADMIN_SECRET as ?secret= on GET /api/token-status, as the old product did. Risky: "
            "URLs end up in proxy, browser and CDN logs; prefer the Authorization header.",
        ),
    ] = False

    # --- API keys and webhooks (jobs/apikeys.py, docs/webhooks.md) --------------------------
    api_keys: Annotated[
        str,
        _m(
            "GHIBLI_API_KEYS",
            "API key entries (id=...,sha256=...,rate=...,max_unfinished=...,webhook_secret=...), "
            "separated by ';'; made by `ghibli keys create`. With keys, POST /v1/jobs needs one.",
        ),
    ] = ""
    api_keys_file: Annotated[
        str,
        _m("GHIBLI_API_KEYS_FILE", "File with one API key entry per line (container secrets); # comments."),
    ] = ""
    public_submissions: Annotated[
        bool,
        _m(
            "GHIBLI_PUBLIC_SUBMISSIONS",
            "With API keys configured, still accept submissions without a key (the built-in page), "
            "limited per client by GHIBLI_RATE_LIMIT_SUBMITS.",
        ),
    ] = False
    webhook_secret: Annotated[
        str,
        _m(
            "GHIBLI_WEBHOOK_SECRET",
            "Signing secret (whsec_...) of webhooks asked for without an API key that has its own; "
            "empty: those callers cannot ask for webhooks.",
        ),
    ] = ""
    webhook_allow_http: Annotated[
        bool, _m("GHIBLI_WEBHOOK_ALLOW_HTTP", "Allow plain http:// webhook URLs (otherwise https only).")
    ] = False
    webhook_allow_networks: Annotated[
        str,
        _m(
            "GHIBLI_WEBHOOK_ALLOW_NETWORKS",
            "Comma list of addresses/CIDRs webhooks may reach although loopback, private, link-local "
            "or reserved (an internal receiver); empty allows public addresses only.",
        ),
    ] = ""
    webhook_timeout_seconds: Annotated[
        float, _m("GHIBLI_WEBHOOK_TIMEOUT_SECONDS", "Time-out of one webhook delivery attempt.", gt=0, le=120)
    ] = 15.0
    webhook_retry_base_seconds: Annotated[
        float,
        _m("GHIBLI_WEBHOOK_RETRY_BASE_SECONDS", "First back-off after a failed delivery (doubles).", gt=0),
    ] = 5.0
    webhook_retry_cap_seconds: Annotated[
        float, _m("GHIBLI_WEBHOOK_RETRY_CAP_SECONDS", "Longest back-off between delivery attempts.", gt=0)
    ] = 3_600.0
    webhook_retry_window_seconds: Annotated[
        float,
        _m(
            "GHIBLI_WEBHOOK_RETRY_WINDOW_SECONDS",
            "How long an event is retried (from its first attempt) before it is given up.",
            gt=0,
        ),
    ] = 86_400.0
    webhook_progress_interval_seconds: Annotated[
        float,
        _m(
            "GHIBLI_WEBHOOK_PROGRESS_INTERVAL_SECONDS",
            "At most one progress webhook per job in this interval; it carries the newest state.",
            ge=0,
        ),
    ] = 5.0
    webhook_concurrency: Annotated[
        int,
        _m(
            "GHIBLI_WEBHOOK_CONCURRENCY",
            "Deliveries one `ghibli webhooks` process makes at once.",
            ge=1,
            le=1024,
        ),
    ] = 16
    webhook_metrics_port: Annotated[
        int,
        _m("GHIBLI_WEBHOOK_METRICS_PORT", "`ghibli webhooks` /metrics port; 0 turns it off.", ge=0, le=65535),
    ] = 0

    # --- logs -----------------------------------------------------------------------------
    log_level: Annotated[str, _m("GHIBLI_LOG_LEVEL", "debug, info, warning or error.")] = "info"
    log_format: Annotated[
        str, _m("GHIBLI_LOG_FORMAT", "json, console, or auto (json unless on a terminal).")
    ] = "auto"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"\{[^{}]+\}.*", self.key_prefix):
            raise ValueError("GHIBLI_KEY_PREFIX must start with a {hash tag}, e.g. {ghibli}:")
        if self.heartbeat_timeout_seconds < 2 * self.heartbeat_seconds:
            raise ValueError(
                "GHIBLI_HEARTBEAT_TIMEOUT_SECONDS must be at least twice GHIBLI_HEARTBEAT_SECONDS"
            )
        if self.log_level not in _LOG_LEVELS:
            raise ValueError(f"GHIBLI_LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}")
        if self.log_format not in ("auto", "json", "console"):
            raise ValueError("GHIBLI_LOG_FORMAT must be auto, json or console")
        try:
            parse_redis_url(self.redis_url)
        except ValueError as exc:
            raise ValueError(f"REDIS_URL {redacted_url(self.redis_url)}: {exc}") from None
        for proxy in filter(None, (p.strip() for p in self.trusted_proxies.split(","))):
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(f"GHIBLI_TRUSTED_PROXIES: {proxy!r} is not an address or CIDR") from None
        try:
            parse_origins(self.cors_origins)
        except ValueError as exc:
            raise ValueError(f"GHIBLI_CORS_ORIGINS: {exc}") from None
        for network in filter(None, (n.strip() for n in self.webhook_allow_networks.split(","))):
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(
                    f"GHIBLI_WEBHOOK_ALLOW_NETWORKS: {network!r} is not an address or CIDR"
                ) from None
        if self.webhook_secret:
            from jobs.webhook_signing import SecretError, WebhookSecret

            try:
                WebhookSecret.parse(self.webhook_secret)
            except SecretError as exc:
                raise ValueError(f"GHIBLI_WEBHOOK_SECRET: {exc}") from None

    def __repr__(self) -> str:
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in self.redacted().items())})"

    def redacted(self) -> dict[str, object]:
        """The settings as shown to people: secrets masked, passwords cut out of URLs."""
        shown: dict[str, object] = {}
        for info in iter_settings():
            value = getattr(self, info.name)
            if info.secret and value:
                value = "***"
            elif isinstance(value, str):
                value = redacted_url(value)
            shown[info.name] = value
        return shown

    def effective_token_max_in_flight(self, *, has_tokens: bool) -> int:
        """ZeroGPU charges quota per call, so one call per HF account at a time is the safe default;
        anonymous calls to a self-hosted Space (a URL) have no quota and are bounded by its queue."""
        if self.token_max_in_flight:
            return self.token_max_in_flight
        return 1024 if not has_tokens and self.space.startswith(("http://", "https://")) else 1

    @property
    def resolved_consumer_name(self) -> str:
        return self.consumer_name or f"{socket.gethostname()}-{os.getpid()}"

    def to_env(self) -> dict[str, str]:
        """The environment that reproduces these settings in a child process."""
        env: dict[str, str] = {}
        for info in iter_settings():
            value = getattr(self, info.name)
            env[info.env] = str(value).lower() if isinstance(value, bool) else str(value)
        return env


_LOG_LEVELS = ("debug", "info", "warning", "error")
_ORIGIN = re.compile(r"https?://(\*\.)?[A-Za-z0-9.-]+(:\d{1,5})?|\*")


def parse_origins(raw: str) -> list[str]:
    """GHIBLI_CORS_ORIGINS as a list: `https://app.example.com`, `http://localhost:3000`,
    `https://*.example.com` or `*`; raises ValueError naming the first entry that is none of them
    (a path or a trailing slash would never match a browser's Origin header)."""
    origins = [o.strip() for o in raw.split(",") if o.strip()]
    for origin in origins:
        if not _ORIGIN.fullmatch(origin):
            raise ValueError(f"{origin!r} is not an origin (scheme://host[:port], no path), nor *")
    return origins


_SECRET_FIELDS = frozenset({"admin_secret", "api_keys", "webhook_secret"})


class SettingsError(ValueError):
    """A setting has a value the process cannot run with; the message names the variable."""


@dataclass(frozen=True, slots=True)
class SettingInfo:
    name: str
    env: str
    help: str
    default: object
    secret: bool
    value_type: type = str  # int, float, bool or str: the CLI types its option with it

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")


_VALUE_TYPES: dict[type, type] = {
    msgspec.inspect.IntType: int,
    msgspec.inspect.FloatType: float,
    msgspec.inspect.BoolType: bool,
}


def iter_settings() -> Iterator[SettingInfo]:
    info = msgspec.inspect.type_info(Settings)
    assert isinstance(info, msgspec.inspect.StructType)
    for field in info.fields:
        meta = field.type
        assert isinstance(meta, msgspec.inspect.Metadata)
        assert meta.extra is not None
        schema = meta.extra_json_schema or {}
        yield SettingInfo(
            name=field.name,
            env=str(meta.extra["env"]),
            help=str(schema.get("description", "")),
            default=field.default,
            secret=field.name in _SECRET_FIELDS,
            value_type=_VALUE_TYPES.get(type(meta.type), str),
        )


def load_settings(
    overrides: Mapping[str, object] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Settings from `environ` (default os.environ), with explicit `overrides` winning.

    Raises SettingsError naming the environment variable (and option) of the first bad value.
    """
    environ = os.environ if environ is None else environ
    by_name = {info.name: info for info in iter_settings()}
    raw: dict[str, object] = {}
    for info in by_name.values():
        if info.env in environ:
            raw[info.name] = environ[info.env]
    for name, value in (overrides or {}).items():
        if value is not None:
            raw[name] = value
    try:
        return _with_redis_password(msgspec.convert(raw, Settings, strict=False))
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = re.search(r"at `\$\.(\w+)`", text)
        if match and match.group(1) in by_name:
            info = by_name[match.group(1)]
            reason = text[: match.start()].rstrip(" -")
            raise SettingsError(f"invalid setting {info.env} ({info.option}): {reason}") from None
        raise SettingsError(f"invalid setting {text}") from None


def _with_redis_password(settings: Settings) -> Settings:
    """Put the passwords from REDIS_PASSWORD_FILE and REDIS_SENTINEL_PASSWORD_FILE into the URL, so
    every caller of `jobs.redis_conn.connect` authenticates without knowing about secret files."""
    url = settings.redis_url
    scheme = url.split("://", 1)[0].lower()
    if settings.redis_password_file:
        where = "invalid setting REDIS_PASSWORD_FILE (--redis-password-file)"
        password = _read_secret(settings.redis_password_file, where)
        if scheme == "unix":
            raise SettingsError(f"{where}: needs a redis://, rediss:// (or +sentinel, +cluster) REDIS_URL")
        url = _replace_password(url, password)
    if settings.redis_sentinel_password_file:
        where = "invalid setting REDIS_SENTINEL_PASSWORD_FILE (--redis-sentinel-password-file)"
        password = _read_secret(settings.redis_sentinel_password_file, where)
        if scheme != "redis+sentinel":
            raise SettingsError(f"{where}: needs a redis+sentinel:// REDIS_URL")
        url = _replace_query(url, "sentinel_password", password)
    if url == settings.redis_url:
        return settings
    return msgspec.structs.replace(settings, redis_url=url)


def _read_secret(path: str, where: str) -> str:
    try:
        # Secret files usually end with a newline; `$(cat file)` in redis-server's command drops it too.
        secret = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise SettingsError(f"{where}: cannot read it ({exc.strerror})") from None
    if not secret:
        raise SettingsError(f"{where}: the file is empty")
    return secret


def _replace_password(url: str, password: str) -> str:
    """The URL with this password in its user info (the user name kept); works for host lists too."""
    scheme, rest = url.split("://", 1)
    cut = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    netloc, tail = rest[:cut], rest[cut:]
    userinfo, at, hosts = netloc.rpartition("@")
    user = userinfo.split(":", 1)[0] if at else ""
    return f"{scheme}://{user}:{quote(password, safe='')}@{hosts}{tail}"


def _replace_query(url: str, name: str, value: str) -> str:
    parts = urlsplit(url)
    kept = [p for p in parts.query.split("&") if p and p.split("=", 1)[0] != name]
    query = "&".join([*kept, f"{name}={quote(value, safe='')}"])
    return urlunsplit(parts._replace(query=query))
