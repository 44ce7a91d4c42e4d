"""What `ghibli doctor` checks: settings, Redis, the jobs stream, the Space and the HF tokens.

Each check returns findings (ok, warn or fail) with what to do about them, so an operator reads one
report instead of a stack trace. Checks never print a secret: URLs are shown redacted and tokens
by alias only. Nothing here writes to Redis or calls the Space's endpoint; `view_api` is a read.
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
from redis.asyncio import Redis

from ghibli.findings import Finding, fail, ok, warn
from jobs.keys import Keys
from jobs.redis_conn import as_text, connect
from jobs.redis_topology import server_info
from jobs.redis_url import parse_redis_url, redacted_url
from jobs.settings import Settings

__all__ = [
    "check_queue",
    "check_redis",
    "check_settings",
    "check_space",
    "glob_literal",
    "redacted_url",
    "with_redis",
]

# XAUTOCLAIM (crash recovery) arrived in Redis 6.2; nothing older can run the consumers.
MIN_REDIS = (6, 2)


# --- settings ---------------------------------------------------------------------------------


def check_settings(settings: Settings) -> list[Finding]:
    """Values that load fine but will hurt in production."""
    found: list[Finding] = []
    target = parse_redis_url(settings.redis_url)
    if target.topology == "standalone":
        url = urlsplit(settings.redis_url)
        hosts, password = ([] if url.scheme == "unix" else [url.hostname or ""]), url.password
    else:
        hosts, password = [host for host, _port in target.nodes], target.password
    if not password and not all(map(_is_loopback, hosts)):
        found.append(
            warn(
                "settings",
                f"REDIS_URL {redacted_url(settings.redis_url)} has no password and is not on this machine.",
                "Give Redis a password (requirepass) and pass it with REDIS_PASSWORD_FILE.",
            )
        )
    if settings.blob_dir:
        blob_dir = Path(settings.blob_dir)
        if not blob_dir.is_dir() or not os.access(blob_dir, os.W_OK | os.X_OK):
            found.append(
                fail(
                    "settings",
                    f"GHIBLI_BLOB_DIR {blob_dir} is not a writable directory.",
                    "Create it (a volume shared by ingest and every consumer), or leave it empty to keep "
                    "photos and results in Redis.",
                )
            )
    if settings.admin_secret and len(settings.admin_secret) < 16:
        found.append(
            warn(
                "settings",
                "ADMIN_SECRET is shorter than 16 characters.",
                "Use a long random secret, e.g. `openssl rand -hex 32`.",
            )
        )
    if not found:
        found.append(
            ok("settings", f"loaded; Redis {redacted_url(settings.redis_url)}, Space {settings.space}")
        )
    return found


def _is_loopback(host: str) -> bool:
    if host in ("", "localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- Redis ------------------------------------------------------------------------------------


async def with_redis(
    settings: Settings, timeout_s: float, body: Callable[[Redis], Awaitable[list[Finding]]]
) -> list[Finding]:
    """Run `body` against Redis, turning an unreachable or refusing server into one finding."""
    redis = connect(settings.redis_url, max_connections=4, name="ghibli-doctor")
    try:
        with anyio.fail_after(timeout_s):
            await redis.ping()
    except TimeoutError:
        return [_unreachable(settings, f"no answer within {timeout_s:.0f} s")]
    except Exception as exc:  # noqa: BLE001 - every failure to reach Redis is reported the same way
        return [_unreachable(settings, str(exc) or type(exc).__name__)]
    try:
        with anyio.fail_after(timeout_s):
            return await body(redis)
    except TimeoutError:
        return [fail("redis", f"Redis stopped answering within {timeout_s:.0f} s.", "Check its load.")]
    finally:
        await redis.aclose()


def _unreachable(settings: Settings, reason: str) -> Finding:
    fix = "Check REDIS_URL, that Redis runs and that this machine may reach it."
    if any(word in reason.upper() for word in ("NOAUTH", "WRONGPASS", "AUTH", "PASSWORD")):
        fix = "The password is wrong or missing: check REDIS_PASSWORD_FILE (or the password in REDIS_URL)."
    return fail("redis", f"cannot talk to Redis at {redacted_url(settings.redis_url)}: {reason}", fix)


async def check_redis(redis: Redis, keys: Keys) -> list[Finding]:
    """Version, role, persistence and memory policy: what decides whether queued jobs survive.

    On a cluster, of the node owning the jobs' slot."""
    info: dict[str, Any] = await server_info(redis, keys.stream, "everything")
    found: list[Finding] = []
    version = str(info.get("redis_version", "0"))
    server = str(info.get("server_name", "Redis")).capitalize()
    numbers = tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
    if numbers < MIN_REDIS:
        found.append(
            fail(
                "redis",
                f"{server} {version} is too old: consumers need XAUTOCLAIM (6.2).",
                "Upgrade to Redis 7.x (the compose file pins one).",
            )
        )
    else:
        found.append(ok("redis", f"{server} {version}, role {info.get('role', '?')}"))
    if info.get("role") not in (None, "master"):
        found.append(
            fail(
                "redis",
                "REDIS_URL points at a replica: every write will fail.",
                "Point REDIS_URL at the primary (with Sentinel or a managed Redis, at its primary endpoint).",
            )
        )
    found += _persistence(info, await _config(redis, "appendfsync"))
    found += _memory(info)
    return found


async def _config(redis: Redis, name: str) -> str | None:
    """CONFIG GET, or None where the command is renamed or denied (managed Redis)."""
    try:
        reply: dict[Any, Any] = await redis.config_get(name)
    except Exception:  # noqa: BLE001 - managed services rename or forbid CONFIG
        return None
    value = reply.get(name, reply.get(name.encode()))
    return value.decode() if isinstance(value, bytes) else value


def _persistence(info: dict[str, Any], appendfsync: str | None) -> list[Finding]:
    if not int(info.get("aof_enabled", 0)):
        return [
            fail(
                "redis.persistence",
                "append-only file is off: a Redis restart loses queued jobs and accepted uploads.",
                "Run Redis with `appendonly yes` and `appendfsync everysec` (the compose file does); on a "
                "managed Redis, turn on its AOF/durability option.",
            )
        ]
    found: list[Finding] = []
    if info.get("aof_last_write_status", "ok") != "ok":
        found.append(
            fail(
                "redis.persistence",
                "the last append-only-file write failed.",
                "Check the disk of Redis's data directory (full? read-only?) and its log.",
            )
        )
    if appendfsync == "no":
        found.append(
            warn(
                "redis.persistence",
                "appendfsync is `no`: a crash can lose about 30 s of jobs.",
                "Set `appendfsync everysec`.",
            )
        )
    else:
        found.append(ok("redis.persistence", f"append-only file on (appendfsync {appendfsync or 'unknown'})"))
    return found


def _memory(info: dict[str, Any]) -> list[Finding]:
    policy = str(info.get("maxmemory_policy", "unknown"))
    maxmemory = int(info.get("maxmemory", 0))
    used = int(info.get("used_memory", 0))
    found: list[Finding] = []
    if policy.startswith("allkeys-"):
        found.append(
            fail(
                "redis.memory",
                f"maxmemory-policy is {policy}: when memory runs out Redis evicts any key, the jobs stream "
                "and its consumer group included, and every queued job is lost.",
                "Set `maxmemory-policy noeviction` (then uploads get 503 when memory is full, and nothing "
                "already accepted is lost).",
            )
        )
    elif policy != "noeviction":
        found.append(
            fail(
                "redis.memory",
                f"maxmemory-policy is {policy}: Redis evicts job statuses and photos (they have TTLs) before "
                "they are done, and their jobs vanish.",
                "Set `maxmemory-policy noeviction`.",
            )
        )
    else:
        found.append(ok("redis.memory", "maxmemory-policy noeviction"))
    if maxmemory == 0:
        found.append(
            warn(
                "redis.memory",
                "maxmemory is 0 (no limit): Redis grows until the machine runs out of memory.",
                "Set `maxmemory` below the memory the machine or container has, and alert on its use.",
            )
        )
    elif used > 0.8 * maxmemory:
        found.append(
            warn(
                "redis.memory",
                f"Redis uses {used / maxmemory:.0%} of maxmemory "
                f"({used >> 20} MiB of {maxmemory >> 20} MiB).",
                "Raise maxmemory, shorten GHIBLI_BLOB_TTL_SECONDS, or move photos to GHIBLI_BLOB_DIR.",
            )
        )
    evicted = int(info.get("evicted_keys", 0))
    if evicted:
        found.append(
            fail(
                "redis.memory",
                f"Redis evicted {evicted} keys since it started.",
                "Set `maxmemory-policy noeviction` and check what filled the memory.",
            )
        )
    return found


# --- the jobs stream and its consumers ------------------------------------------------------


async def check_queue(redis: Redis, keys: Keys) -> list[Finding]:
    """The stream and group exist, consumers are alive, and the dead-letter stream is empty."""
    kind = await redis.type(keys.stream)
    kind = kind.decode() if isinstance(kind, bytes) else str(kind)
    if kind == "none":
        return [
            fail(
                "queue",
                f"the jobs stream {keys.stream} does not exist.",
                "Start a consumer (`ghibli consume`): it creates the stream and the group. If consumers run, "
                "check that GHIBLI_KEY_PREFIX and GHIBLI_STREAM are the same everywhere.",
            )
        ]
    if kind != "stream":
        return [
            fail(
                "queue",
                f"{keys.stream} holds a {kind}, not a stream: another program uses this key.",
                "Give this deployment its own GHIBLI_KEY_PREFIX (or its own Redis database).",
            )
        ]
    groups = {as_text(g["name"]): g for g in await redis.xinfo_groups(keys.stream)}
    group = groups.get(keys.group)
    if group is None:
        return [
            fail(
                "queue",
                f"the stream {keys.stream} has no consumer group {keys.group!r}"
                + (f" (it has {sorted(groups)})" if groups else "")
                + ".",
                "Start a consumer (`ghibli consume`), and check that GHIBLI_GROUP is the same everywhere.",
            )
        ]
    found = [
        ok(
            "queue",
            f"stream {keys.stream}, group {keys.group}: {group.get('pending', 0)} pending, "
            f"lag {group.get('lag', 'unknown')}",
        )
    ]
    alive = [key async for key in redis.scan_iter(match=glob_literal(keys.alive("")) + "*", count=500)]
    if alive:
        found.append(ok("queue", f"{len(alive)} consumer(s) alive"))
    else:
        found.append(
            warn(
                "queue",
                "no consumer is alive: jobs queue up and nobody works them.",
                "Start consumers (`ghibli consume`, or `docker compose up -d consumer`).",
            )
        )
    dead = int(await redis.xlen(keys.dead))
    if dead:
        found.append(
            warn(
                "queue",
                f"{dead} job(s) in the dead-letter stream {keys.dead}.",
                "Look at their errors in the admin API (dead letters) and replay or drop them.",
            )
        )
    return found


def glob_literal(pattern: str) -> str:
    """A key as a literal SCAN pattern: the prefix's {hash tag} braces are fine, globs are not."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in pattern)


# --- the Space --------------------------------------------------------------------------------


def check_space(settings: Settings, token: str | None, timeout_s: float) -> list[Finding]:
    """Connect like a consumer does and check the endpoint's signature with `view_api`."""
    from consumers.errors import SpaceError
    from consumers.space_client import ENDPOINT, FULL_SIGNATURE, SpaceSession

    with tempfile.TemporaryDirectory(prefix="ghibli-doctor-") as tmp:
        session = SpaceSession(settings.space, token, download_dir=Path(tmp))
        outcome: list[BaseException | tuple[str, ...]] = []

        def probe() -> None:
            try:
                session.connect()
                outcome.append(session.parameters)
            except BaseException as exc:  # noqa: BLE001 - reported below, whatever it is
                outcome.append(exc)

        # A daemon thread: gradio_client cannot be interrupted, and a hung connect must not hold
        # the doctor's exit.
        thread = threading.Thread(target=probe, name="doctor-space", daemon=True)
        thread.start()
        thread.join(timeout_s)
        if not outcome:
            return [
                fail(
                    "space",
                    f"{settings.space} did not answer within {timeout_s:.0f} s.",
                    "Check GHIBLI_SPACE and the network; a sleeping HF Space takes minutes to wake up.",
                )
            ]
        session.close()
    result = outcome[0]
    if isinstance(result, SpaceError):
        return [fail("space", f"{settings.space}: {result}", _space_fix(settings))]
    if isinstance(result, BaseException):
        return [fail("space", f"{settings.space}: {type(result).__name__}: {result}", _space_fix(settings))]
    found = [ok("space", f"{settings.space} answers; {ENDPOINT}({', '.join(result)})")]
    if len(result) < len(FULL_SIGNATURE):
        found.append(
            warn(
                "space",
                f"{settings.space} is an older copy without {', '.join(FULL_SIGNATURE[len(result) :])}.",
                "Nothing to do unless you want those parameters: update the Space's app.py.",
            )
        )
    return found


def _space_fix(settings: Settings) -> str:
    if settings.space.startswith(("http://", "https://")):
        return (
            "Check that GHIBLI_SPACE points at a running Gradio app with the Ghibli endpoint (offline: "
            "`ghibli space`, or `docker compose --profile offline up -d space`)."
        )
    return (
        "Check GHIBLI_SPACE (a Hugging Face Space id such as jamesliu1217/EasyControl_Ghibli), that the "
        "Space is running, and the HF token if it is private."
    )
