"""Read the queue's state from Redis: what the stream, the group, the PEL and the side sets say.

One read is a handful of round trips and is bounded: the PEL holds at most consumers x
concurrency entries in normal operation, and every scan stops at `scan_limit` entries. Ages use
Redis's own clock (TIME), since entry ids are Redis timestamps and the exporter may run elsewhere.
Works on Redis 6.2 (no XINFO lag; lag is computed) and 7.x.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jobs.logs import get_logger
from jobs.redis_conn import as_text
from jobs.token_state import TOKEN_STATES, decode_space, decode_token, queue_token_reads, space_key

if TYPE_CHECKING:
    from redis import Redis

    from jobs.keys import Keys

__all__ = ["TOKEN_STATES", "QueueState", "TokenState", "read_queue_state"]

log = get_logger("metrics.queue_state")

_PAGE = 1000


@dataclass(frozen=True, slots=True)
class TokenState:
    alias: str
    state: str
    cooldown_s: float
    in_flight: int


@dataclass(slots=True)
class QueueState:
    """The queue at one instant. Ages and idle times in seconds; 0 where there is nothing."""

    stream_length: int = 0
    group_lag: int = 0
    group_pending: int = 0
    group_consumers: int = 0
    consumers_live: int = 0
    backlog_oldest_age_s: float = 0.0
    pending_oldest_age_s: float = 0.0
    pending_max_idle_s: float = 0.0
    pending_max_deliveries: int = 0
    pending_expired_leases: int = 0
    delayed: int = 0
    delayed_overdue_s: float = 0.0
    waiting_for_quota: int = 0
    dead_letters: int = 0
    tokens: list[TokenState] = field(default_factory=list)
    space_ready: int | None = None  # None until a consumer has checked the Space's API
    space_paused: int = 0

    def tokens_by_state(self) -> dict[str, int]:
        """Every state (0 when empty), so alert arithmetic never meets a missing series."""
        counts = dict.fromkeys(TOKEN_STATES, 0)
        for token in self.tokens:
            counts[token.state] = counts.get(token.state, 0) + 1
        return counts


def _id_ms(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


def _age_s(now_ms: int, then_ms: int) -> float:
    return max(0, now_ms - then_ms) / 1000


def read_queue_state(redis: Redis, keys: Keys, *, lease_s: float, scan_limit: int = 10_000) -> QueueState:
    """The queue's state now. Raises redis errors: the caller reports the read as failed."""
    seconds, micros = redis.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    lease_ms = int(lease_s * 1000)
    state = QueueState()
    if redis.exists(keys.stream):
        _read_stream(redis, keys, state, now_ms=now_ms, lease_ms=lease_ms, scan_limit=scan_limit)
    _read_delayed(redis, keys, state, now_ms=now_ms, scan_limit=scan_limit)
    state.dead_letters = int(redis.xlen(keys.dead))
    state.tokens = _read_tokens(redis, keys, now_ms=now_ms)
    _read_space(redis, keys, state, now_ms=now_ms)
    return state


def _read_stream(
    redis: Redis, keys: Keys, state: QueueState, *, now_ms: int, lease_ms: int, scan_limit: int
) -> None:
    state.stream_length = int(redis.xlen(keys.stream))
    group = _find_group(redis.xinfo_groups(keys.stream), keys.group)
    if group is None:
        # No group yet: nothing was ever delivered, the whole stream is backlog.
        state.group_lag = state.stream_length
        first = redis.xrange(keys.stream, "-", "+", count=1)
        if first:
            state.backlog_oldest_age_s = _age_s(now_ms, _id_ms(as_text(first[0][0])))
        return
    last_delivered = as_text(group["last-delivered-id"])
    state.group_pending = int(group["pending"])
    state.group_lag = _lag(redis, keys, group, last_delivered, state.stream_length, scan_limit)
    start = "-" if last_delivered == "0-0" else f"({last_delivered}"
    head = redis.xrange(keys.stream, start, "+", count=1)
    if head:
        state.backlog_oldest_age_s = _age_s(now_ms, _id_ms(as_text(head[0][0])))
    consumers = redis.xinfo_consumers(keys.stream, keys.group)
    state.group_consumers = len(consumers)
    state.consumers_live = _live_consumers(redis, keys, consumers, lease_ms)
    if state.group_pending:
        _read_pending(redis, keys, state, now_ms=now_ms, lease_ms=lease_ms, scan_limit=scan_limit)


def _find_group(groups: Iterable[dict[str, Any]], name: str) -> dict[str, Any] | None:
    for group in groups:
        if as_text(group["name"]) == name:
            return group
    return None


def _lag(
    redis: Redis, keys: Keys, group: dict[str, Any], last_delivered: str, length: int, scan_limit: int
) -> int:
    """Undelivered entries. XINFO reports it on Redis >= 7 (unless it cannot tell); else count.

    The stream holds undelivered entries plus delivered ones not yet deleted (pending, mostly),
    so lag = length - entries up to last-delivered-id; the latter are few and cheap to count.
    """
    lag = group.get("lag")
    if lag is not None:
        return int(lag)
    delivered = 0
    start = "-"
    while delivered < scan_limit:
        page = redis.xrange(keys.stream, start, last_delivered, count=_PAGE) or []
        delivered += len(page)
        if len(page) < _PAGE:
            return max(0, length - delivered)
        start = f"({as_text(page[-1][0])}"
    log.warning("lag scan truncated; reporting length minus pending", limit=scan_limit)
    return max(0, length - int(group["pending"]))


def _live_consumers(redis: Redis, keys: Keys, consumers: list[dict[str, Any]], lease_ms: int) -> int:
    """Consumers that touched the group within one lease, or whose liveness key still exists.

    A consumer that reads, renews its leases or reclaims resets its idle time; one that is
    SIGSTOPped or killed does neither and its liveness key expires.
    """
    idle_by_name = {as_text(c["name"]): int(c["idle"]) for c in consumers}
    names = set(idle_by_name) | {as_text(n) for n in redis.zrange(keys.consumers, 0, _PAGE - 1)}
    ordered = sorted(names)
    with redis.pipeline(transaction=False) as pipe:
        for name in ordered:
            pipe.exists(keys.alive(name))
        alive_keys = pipe.execute()
    return sum(
        1
        for name, has_key in zip(ordered, alive_keys, strict=True)
        if has_key or idle_by_name.get(name, lease_ms) < lease_ms
    )


def _read_pending(
    redis: Redis, keys: Keys, state: QueueState, *, now_ms: int, lease_ms: int, scan_limit: int
) -> None:
    summary = redis.xpending(keys.stream, keys.group)
    if summary.get("min"):
        state.pending_oldest_age_s = _age_s(now_ms, _id_ms(as_text(summary["min"])))
    seen = 0
    start = "-"
    max_idle_ms = 0
    while seen < scan_limit:
        page = redis.xpending_range(keys.stream, keys.group, start, "+", _PAGE)
        for entry in page:
            idle_ms = int(entry["time_since_delivered"])
            max_idle_ms = max(max_idle_ms, idle_ms)
            state.pending_max_deliveries = max(state.pending_max_deliveries, int(entry["times_delivered"]))
            if idle_ms > lease_ms:
                state.pending_expired_leases += 1
        seen += len(page)
        if len(page) < _PAGE:
            break
        start = f"({as_text(page[-1]['message_id'])}"
    else:
        log.warning("pending scan truncated", limit=scan_limit)
    state.pending_max_idle_s = max_idle_ms / 1000


def _read_delayed(redis: Redis, keys: Keys, state: QueueState, *, now_ms: int, scan_limit: int) -> None:
    state.delayed = int(redis.zcard(keys.delayed))
    if not state.delayed:
        return
    earliest = redis.zrange(keys.delayed, 0, 0, withscores=True)
    if earliest:
        state.delayed_overdue_s = _age_s(now_ms, int(earliest[0][1]))
    # Jobs waiting for quota sit in the delayed set like retries; their status tells them apart.
    members = redis.zrange(keys.delayed, 0, scan_limit - 1)
    with redis.pipeline(transaction=False) as pipe:
        for member in members:
            pipe.hget(keys.job(as_text(member)), "status")
        statuses = pipe.execute()
    state.waiting_for_quota = sum(1 for s in statuses if s is not None and as_text(s) == "waiting_for_quota")


def _read_tokens(redis: Redis, keys: Keys, *, now_ms: int) -> list[TokenState]:
    """Every token of the pool, decoded the way the admin view decodes it (jobs.token_state)."""
    aliases = [as_text(a) for a in redis.zrange(keys.tokens, 0, _PAGE - 1)]
    if not aliases:
        return []
    with redis.pipeline(transaction=False) as pipe:
        for alias in aliases:
            queue_token_reads(pipe, keys, alias, now_ms)
        replies = pipe.execute()
    tokens = []
    for i, alias in enumerate(aliases):
        view = decode_token(alias, replies[2 * i], int(replies[2 * i + 1]), now_ms)
        tokens.append(TokenState(view.alias, view.state, view.cooldown_seconds, view.in_flight))
    return tokens


def _read_space(redis: Redis, keys: Keys, state: QueueState, *, now_ms: int) -> None:
    raw = redis.hgetall(space_key(keys))
    if not raw:
        return
    view = decode_space(raw, now_ms)
    state.space_ready = None if view.ready is None else int(view.ready)
    state.space_paused = int(view.paused_until is not None)
