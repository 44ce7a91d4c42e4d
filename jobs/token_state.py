"""The HF token pool's shared state in Redis: key names, hash fields, and how to read them.

Consumers write this state (consumers/token_pool.py, through jobs/lua/token_*.lua); ingest's admin
view and the metrics exporter read it with the helpers here, so neither imports `consumers`.
Nothing here ever holds a token: every key and field is about an alias.

Keys (all under the configured prefix):
- `tokens`: ZSET of known aliases, scored by when each was first registered (ms).
- `token:<alias>`: hash of counters and times (fields below).
- `token:<alias>:leases`: ZSET of the calls running on the token, scored by when their lease
  expires (ms). In-flight is the number of unexpired leases, so a SIGKILLed consumer's slot frees
  itself when its lease runs out; running calls renew theirs.
- `space`: hash of the Space's readiness (from the consumers' start-up check) and of the shared
  circuit breaker.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec

from jobs.redis_conn import as_text

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobs.keys import Keys

__all__ = [
    "TOKEN_STATES",
    "LastError",
    "PoolSummary",
    "PoolView",
    "SpaceView",
    "TokenView",
    "decode_space",
    "decode_token",
    "gpu_day",
    "leases_key",
    "queue_token_reads",
    "read_pool",
    "space_key",
]

# ready: can take a call now; busy: every slot in use; cooling: quota exhausted until
# cooldown_until; disabled: malformed, never used (reported at the consumer's start-up).
TOKEN_STATES = ("ready", "busy", "cooling", "disabled")

# Hash fields of token:<alias>. Times are unix ms; counters are integers unless noted.
F_REGISTERED_AT = "registered_at"
F_SEEN_AT = "seen_at"  # last consumer start-up that configured this token
F_SOURCE = "source"  # the variable it came from, e.g. HUGGING_FACE_TOKEN_2 (not a secret)
F_DISABLED = "disabled"  # "1" when malformed
F_PROBLEM = "problem"  # why it is disabled
F_MAX_IN_FLIGHT = "max_in_flight"
F_COOLDOWN_UNTIL = "cooldown_until"
F_LAST_USED = "last_used"
F_CALLS = "calls"
F_SUCCESSES = "successes"
F_FAILURES = "failures"  # every failed call, quota refusals included
F_QUOTA_ERRORS = "quota_errors"
F_GPU_DAY = "gpu_day"  # UTC day (YYYYMMDD) that gpu_seconds counts
F_GPU_SECONDS = "gpu_seconds"  # GPU seconds requested that day (float)
F_GPU_REQUEST = "gpu_request_s"  # seconds per call, as the Space last said "(60s requested ...)"
F_LAST_ERROR_CODE = "last_error_code"
F_LAST_ERROR_AT = "last_error_at"

# Fields of the `space` hash.
S_READY = "ready"  # "1" / "0" from the last endpoint check
S_REASON = "reason"  # why not ready
S_SIGNATURE = "signature"  # the endpoint's parameters, comma separated
S_CHECKED_AT = "checked_at"
S_BREAKER_UNTIL = "breaker_open_until"
S_BREAKER_REASON = "breaker_reason"


def leases_key(keys: Keys, alias: str) -> str:
    return keys.token(alias) + ":leases"


def space_key(keys: Keys) -> str:
    return f"{keys.prefix}space"


def gpu_day(now_ms: int) -> str:
    return time.strftime("%Y%m%d", time.gmtime(now_ms / 1000))


class LastError(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    at: datetime | None


class TokenView(msgspec.Struct, frozen=True, kw_only=True):
    """One token as operators see it (never the token itself)."""

    alias: str
    state: str
    source: str
    problem: str | None = None
    cooldown_until: datetime | None = None
    cooldown_seconds: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 1
    calls: int = 0
    successes: int = 0
    failures: int = 0
    quota_errors: int = 0
    gpu_seconds_today: float = 0.0
    gpu_seconds_per_call: float | None = None
    last_used: datetime | None = None
    last_error: LastError | None = None


class SpaceView(msgspec.Struct, frozen=True, kw_only=True):
    ready: bool | None = None  # None: no consumer has checked yet
    reason: str | None = None
    signature: list[str] = msgspec.field(default_factory=list)
    checked_at: datetime | None = None
    paused_until: datetime | None = None  # circuit breaker open
    paused_reason: str | None = None


class PoolSummary(msgspec.Struct, frozen=True, kw_only=True):
    tokens: int
    ready: int
    busy: int
    cooling: int
    disabled: int
    in_flight: int
    calls: int
    successes: int
    failures: int
    quota_errors: int
    gpu_seconds_today: float
    next_resume_at: datetime | None  # when the first cooling token is back, if none is usable


class PoolView(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    summary: PoolSummary
    tokens: list[TokenView]
    space: SpaceView


def _int(fields: Mapping[str, str], name: str) -> int:
    try:
        return int(float(fields.get(name, "0") or 0))
    except ValueError:
        return 0


def _float(fields: Mapping[str, str], name: str) -> float:
    try:
        return float(fields.get(name, "0") or 0)
    except ValueError:
        return 0.0


def _when(ms: int) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, tz=UTC) if ms > 0 else None


def _decoded(raw: Mapping[Any, Any] | None) -> dict[str, str]:
    return {as_text(k): as_text(v) for k, v in (raw or {}).items()}


def queue_token_reads(pipe: Any, keys: Keys, alias: str, now_ms: int) -> None:
    """Queue the two reads `decode_token` needs on a pipeline (sync or async, same calls)."""
    pipe.hgetall(keys.token(alias))
    pipe.zcount(leases_key(keys, alias), f"({now_ms}", "+inf")


def decode_token(alias: str, raw: Mapping[Any, Any] | None, live_leases: int, now_ms: int) -> TokenView:
    """A token's view from its hash and its count of unexpired leases."""
    fields = _decoded(raw)
    cooldown_ms = _int(fields, F_COOLDOWN_UNTIL)
    max_in_flight = max(1, _int(fields, F_MAX_IN_FLIGHT) or 1)
    if fields.get(F_DISABLED) == "1":
        state = "disabled"
    elif cooldown_ms > now_ms:
        state = "cooling"
    elif live_leases >= max_in_flight:
        state = "busy"
    else:
        state = "ready"
    error_code = fields.get(F_LAST_ERROR_CODE, "")
    request = _float(fields, F_GPU_REQUEST)
    return TokenView(
        alias=alias,
        state=state,
        source=fields.get(F_SOURCE, ""),
        problem=fields.get(F_PROBLEM) or None,
        cooldown_until=_when(cooldown_ms) if cooldown_ms > now_ms else None,
        cooldown_seconds=round(max(0, cooldown_ms - now_ms) / 1000, 1),
        in_flight=live_leases,
        max_in_flight=max_in_flight,
        calls=_int(fields, F_CALLS),
        successes=_int(fields, F_SUCCESSES),
        failures=_int(fields, F_FAILURES),
        quota_errors=_int(fields, F_QUOTA_ERRORS),
        gpu_seconds_today=_float(fields, F_GPU_SECONDS) if fields.get(F_GPU_DAY) == gpu_day(now_ms) else 0.0,
        gpu_seconds_per_call=request or None,
        last_used=_when(_int(fields, F_LAST_USED)),
        last_error=LastError(code=error_code, at=_when(_int(fields, F_LAST_ERROR_AT)))
        if error_code
        else None,
    )


def decode_space(raw: Mapping[Any, Any] | None, now_ms: int) -> SpaceView:
    fields = _decoded(raw)
    paused_ms = _int(fields, S_BREAKER_UNTIL)
    paused = paused_ms > now_ms
    ready = fields.get(S_READY)
    return SpaceView(
        ready=None if ready is None else ready == "1",
        reason=fields.get(S_REASON) or None,
        signature=[p for p in fields.get(S_SIGNATURE, "").split(",") if p],
        checked_at=_when(_int(fields, S_CHECKED_AT)),
        paused_until=_when(paused_ms) if paused else None,
        paused_reason=(fields.get(S_BREAKER_REASON) or None) if paused else None,
    )


def summarize(tokens: list[TokenView]) -> PoolSummary:
    counts = dict.fromkeys(TOKEN_STATES, 0)
    for token in tokens:
        counts[token.state] += 1
    usable = counts["ready"] + counts["busy"]
    resumes = [t.cooldown_until for t in tokens if t.cooldown_until is not None]
    return PoolSummary(
        tokens=len(tokens),
        ready=counts["ready"],
        busy=counts["busy"],
        cooling=counts["cooling"],
        disabled=counts["disabled"],
        in_flight=sum(t.in_flight for t in tokens),
        calls=sum(t.calls for t in tokens),
        successes=sum(t.successes for t in tokens),
        failures=sum(t.failures for t in tokens),
        quota_errors=sum(t.quota_errors for t in tokens),
        gpu_seconds_today=round(sum(t.gpu_seconds_today for t in tokens), 1),
        next_resume_at=min(resumes) if resumes and not usable else None,
    )


async def read_pool(redis: Redis, keys: Keys, now_ms: int | None = None) -> PoolView:
    """Every known token (registration order) with totals, and the Space's state."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    aliases = [as_text(a) for a in await redis.zrange(keys.tokens, 0, -1)]
    async with redis.pipeline(transaction=False) as pipe:
        for alias in aliases:
            queue_token_reads(pipe, keys, alias, now_ms)
        pipe.hgetall(space_key(keys))
        replies = await pipe.execute()
    tokens = [
        decode_token(alias, replies[2 * i], int(replies[2 * i + 1]), now_ms)
        for i, alias in enumerate(aliases)
    ]
    return PoolView(
        at=datetime.fromtimestamp(now_ms / 1000, tz=UTC),
        summary=summarize(tokens),
        tokens=tokens,
        space=decode_space(replies[-1], now_ms),
    )
