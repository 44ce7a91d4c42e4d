"""`ghibli webhooks`: deliver each job's webhook outbox, in order, at least once.

A process of its own, not a task inside the consumers: a slow or hostile receiver can then never
take time, connections or memory from a Space call, a process that sends requests to URLs callers
chose holds no HF token, and deliveries scale (and fail) apart from GPU work. Several dispatchers
may run at once.

Loop: take due jobs (jobs/lua/webhook_claim.lua, which leases them), and for each job look at the
head of its outbox: send it (signed, to the checked address), or drop a progress event a newer
event has overtaken, or wait for the progress interval; then record the outcome
(jobs/lua/webhook_result.lua), which moves to the next event or schedules the retry.

Retries: on a non-2xx answer or a network error, after base * 2^n seconds (capped, with jitter; a
longer Retry-After wins), until the event's first attempt is GHIBLI_WEBHOOK_RETRY_WINDOW_SECONDS
old; then it is given up and the next one goes. Later events of the job wait meanwhile, so a
receiver sees each job's events in order. 410 Gone drops the job's remaining events.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import msgspec
from redis.exceptions import RedisError

from jobs.apikeys import ANONYMOUS, KeyRing, load_key_ring, webhook_secrets_for
from jobs.backoff import Backoff, backoff_delay
from jobs.keys import Keys
from jobs.logs import get_logger
from jobs.redis_conn import as_text, connect
from jobs.script_defs_infra import (
    WEBHOOK_CLAIM,
    WEBHOOK_RESULT,
    WebhookClaimArgs,
    WebhookClaimKeys,
    WebhookOutcome,
    WebhookResultArgs,
    WebhookResultKeys,
)
from jobs.stop_signals import watch_stop_signals
from jobs.store import now_ms
from jobs.webhook_signing import WebhookSecret
from jobs.webhook_url import UrlPolicy
from jobs.webhooks import OutboxItem, WebhookKeys, event_body
from metrics.definitions import WEBHOOK_ATTEMPT_SECONDS, WEBHOOK_ATTEMPTS, WEBHOOK_EVENTS
from metrics.exposition import serve_process_metrics
from webhooks.delivery import AttemptResult, Deliverer

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobs.settings import Settings

__all__ = ["Dispatcher", "RetryPolicy", "run_dispatcher"]

log = get_logger("webhooks.dispatch")

IDLE_POLL_S = 0.25


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_s: float = 5.0
    cap_s: float = 3600.0
    window_s: float = 86_400.0

    def delay_s(self, failures: int, retry_after_s: float | None = None) -> float:
        """Back-off after the `failures`-th failure (1, 2, ...): doubling, capped, jittered 50-100 %."""
        delay = backoff_delay(failures, self.base_s, self.cap_s, jitter="half")
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.cap_s))
        return delay


@dataclass(frozen=True, slots=True)
class Due:
    """A claimed job: its head event and the head's delivery state."""

    job_id: str
    head: bytes
    queued: int
    failures: int
    first_at: int
    progress_at: int
    token: str


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        deliverer: Deliverer,
        ring: KeyRing,
    ) -> None:
        self._redis = redis
        self._deliverer = deliverer
        self._ring = ring
        self._keys = WebhookKeys(settings.key_prefix)
        self._job_keys = Keys(settings.key_prefix, settings.stream_name, settings.group_name)
        self._fallback = WebhookSecret.parse(settings.webhook_secret) if settings.webhook_secret else None
        self._retry = RetryPolicy(
            settings.webhook_retry_base_seconds,
            settings.webhook_retry_cap_seconds,
            settings.webhook_retry_window_seconds,
        )
        self._progress_ms = int(settings.webhook_progress_interval_seconds * 1000)
        self._concurrency = settings.webhook_concurrency
        # A claimed job is due again after this if its holder vanished: longer than any attempt.
        self._lease_ms = int((settings.webhook_timeout_seconds + 30) * 1000)
        self._claim = WEBHOOK_CLAIM.load(redis)
        self._result = WEBHOOK_RESULT.load(redis)
        self._in_flight = 0
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True

    async def run(self) -> None:
        """Claim and deliver until stop(); in-flight deliveries finish before it returns."""
        outage = Backoff()
        async with anyio.create_task_group() as tg:
            while not self._stopping:
                free = self._concurrency - self._in_flight
                claimed: list[Due] = []
                if free > 0:
                    try:
                        claimed = await self._take(free)
                    except (RedisError, OSError) as exc:  # an OOM or a demoted primary too: wait
                        if not outage.failing:
                            log.warning("webhooks: redis unavailable", error=type(exc).__name__)
                        await anyio.sleep(outage.next_delay())
                        continue
                    if outage.failing:
                        log.info("webhooks: redis back")
                        outage.reset()
                for due in claimed:
                    self._in_flight += 1
                    tg.start_soon(self._handle, due)
                if not claimed:
                    await anyio.sleep(IDLE_POLL_S)

    async def _take(self, limit: int) -> list[Due]:
        token = secrets.token_hex(8)
        flat = await self._claim(
            WebhookClaimKeys(due=self._keys.due),
            WebhookClaimArgs(
                now_ms=now_ms(),
                lease_ms=self._lease_ms,
                limit=limit,
                queue_prefix=self._keys.queue_prefix,
                state_prefix=self._keys.state_prefix,
                token=token,
            ),
        )
        return [
            Due(
                job_id=as_text(flat[i]),
                head=flat[i + 1] if isinstance(flat[i + 1], bytes) else str(flat[i + 1]).encode(),
                queued=int(flat[i + 2]),
                failures=int(flat[i + 3]),
                first_at=int(flat[i + 4]),
                progress_at=int(flat[i + 5]),
                token=token,
            )
            for i in range(0, len(flat), 6)
        ]

    async def _handle(self, due: Due) -> None:
        try:
            await self._process(due)
        except Exception:
            # The lease runs out and the event is tried again: delayed, never lost.
            log.exception("webhooks: delivery step failed", job_id=due.job_id)
        finally:
            self._in_flight -= 1

    async def _process(self, due: Due) -> None:
        try:
            item = msgspec.json.decode(due.head, type=OutboxItem)
        except msgspec.DecodeError:
            await self._record(due, "-", "", WebhookOutcome.GIVEN_UP, error="unreadable_event")
            return
        now = now_ms()
        if item.type == "progress" and due.queued >= 2:
            await self._record(due, item.id, item.type, WebhookOutcome.SUPERSEDED, key_id=item.key_id)
            return
        if item.type == "progress" and due.failures == 0 and due.progress_at + self._progress_ms > now:
            await self._record(
                due, item.id, item.type, WebhookOutcome.DEFERRED, retry_at=due.progress_at + self._progress_ms
            )
            return
        key = self._ring.get(item.key_id) if item.key_id else None
        signing = webhook_secrets_for(key, self._fallback) if key is not None or not item.key_id else ()
        if not signing:
            log.error("webhooks: no signing secret; event given up", job_id=item.job, key_id=item.key_id)
            await self._record(
                due,
                item.id,
                item.type,
                WebhookOutcome.GIVEN_UP,
                key_id=item.key_id,
                error="no_signing_secret",
            )
            return
        started = time.perf_counter()
        result = await self._deliverer.attempt(item.url, item.id, event_body(item), signing)
        elapsed = time.perf_counter() - started
        label = item.key_id or ANONYMOUS
        WEBHOOK_ATTEMPTS.labels(outcome=result.outcome, key=label).inc()
        WEBHOOK_ATTEMPT_SECONDS.labels(outcome=result.outcome).observe(elapsed)
        verdict, retry_at = self._verdict(due, result)
        outcome = await self._record(
            due,
            item.id,
            item.type,
            verdict,
            key_id=item.key_id,
            retry_at=retry_at,
            attempted=True,
            status=result.status,
            error=result.error,
        )
        log.info(
            "webhook attempt",
            job_id=item.job,
            key_id=label,
            webhook_id=item.id,
            kind=item.type,
            host=result.host,
            outcome=result.outcome,
            status=result.status or None,
            error=result.error or None,
            attempt=due.failures + 1,
            then=outcome,
            duration_ms=round(elapsed * 1000, 1),
        )

    def _verdict(self, due: Due, result: AttemptResult) -> tuple[WebhookOutcome, int]:
        if result.delivered:
            return WebhookOutcome.DELIVERED, 0
        if result.gone:
            return WebhookOutcome.GONE, 0
        now = now_ms()
        first = due.first_at or now
        if now - first >= self._retry.window_s * 1000:
            return WebhookOutcome.GIVEN_UP, 0
        delay = self._retry.delay_s(due.failures + 1, result.retry_after_s)
        return WebhookOutcome.FAILED, now + int(delay * 1000)

    async def _record(
        self,
        due: Due,
        item_id: str,
        event: str,
        verdict: WebhookOutcome,
        *,
        key_id: str = "",
        retry_at: int = 0,
        attempted: bool = False,
        status: int = 0,
        error: str = "",
    ) -> WebhookOutcome:
        with anyio.CancelScope(shield=True):  # an outcome, once known, is written even on shutdown
            reply = await self._result(
                WebhookResultKeys(
                    due=self._keys.due,
                    queue=self._keys.queue(due.job_id),
                    state=self._keys.state(due.job_id),
                    job=self._job_keys.job(due.job_id),
                ),
                WebhookResultArgs(
                    job_id=due.job_id,
                    token=due.token,
                    item_id=item_id,
                    verdict=verdict,
                    now_ms=now_ms(),
                    retry_at_ms=retry_at,
                    progress_interval_ms=self._progress_ms,
                    attempted=1 if attempted else 0,
                    event_type=event,
                    http_status=status,
                    error=error,
                ),
            )
        outcome = WebhookOutcome.of(reply)
        if outcome in (
            WebhookOutcome.DELIVERED,
            WebhookOutcome.GIVEN_UP,
            WebhookOutcome.GONE,
            WebhookOutcome.SUPERSEDED,
        ):
            WEBHOOK_EVENTS.labels(result=outcome, key=key_id or ANONYMOUS).inc()
        if outcome in (WebhookOutcome.GIVEN_UP, WebhookOutcome.GONE):
            log.warning("webhook event given up", job_id=due.job_id, key_id=key_id or ANONYMOUS, reason=error)
        return outcome


async def _serve(settings: Settings) -> None:
    ring = load_key_ring(settings)
    # Named per process: `ghibli up` knows the dispatcher it started is ready once it sees it connected.
    name = f"webhooks:{socket.gethostname()}-{os.getpid()}"
    redis = connect(settings.redis_url, max_connections=settings.webhook_concurrency + 4, name=name)
    deliverer = Deliverer(UrlPolicy.from_settings(settings), settings.webhook_timeout_seconds)
    dispatcher = Dispatcher(settings, redis, deliverer, ring)
    try:
        async with anyio.create_task_group() as tg:

            def drain() -> None:
                dispatcher.stop()  # in-flight deliveries finish
                # Bounded: an attempt is bounded by its time-out; then the leases expire.
                tg.cancel_scope.deadline = anyio.current_time() + settings.webhook_timeout_seconds + 5

            async def stop_on_signal() -> None:
                # "At once": in-flight attempts are cut; their jobs are due again when the lease expires.
                await watch_stop_signals(drain, tg.cancel_scope.cancel, process="webhooks")

            tg.start_soon(stop_on_signal)
            log.info("webhooks: dispatcher running", concurrency=settings.webhook_concurrency)
            await dispatcher.run()
            tg.cancel_scope.cancel()
    finally:
        await deliverer.aclose()
        await redis.aclose()


def run_dispatcher(settings: Settings) -> None:
    serve_process_metrics(settings.metrics_host, settings.webhook_metrics_port)
    anyio.run(_serve, settings)
