"""The consumer's one door to the Space: run a job's call with a suitable HF token.

The worker only sees `SpaceCaller.call` (result bytes or a classified SpaceError), `QuotaWait`
(every token is cooling down: wait, do not fail), `paused_until` (the circuit breaker) and
`readiness` (the start-up check of the endpoint). Token choice, cooling, one gradio Client per
(space, token) and the breaker live behind it.

A quota refusal is not a failure of the job: the token cools down until the time the Space named
and the same call runs again at once on another token, without counting an attempt. Only when
every token is cooling does the call end, with QuotaWait and the time the first one is back.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import structlog
from redis.exceptions import RedisError

from consumers.breaker import CircuitBreaker
from consumers.errors import ErrorKind, QuotaWait, SpaceError, classify
from consumers.result_check import check_result
from consumers.space_client import CallTrace, SpaceSession, SpaceUpdate, sweep_download_leftovers
from consumers.token_pool import Lease, Outcome, TokenPool
from consumers.token_transport import check_token_transport
from consumers.tokens import TokenSet, load_tokens
from jobs import token_state as ts
from jobs.logs import get_logger
from jobs.model import JobParams
from jobs.script_defs_infra import AcquireVerdict
from jobs.store import now_ms
from metrics.definitions import QUOTA_COOLDOWNS, SPACE_CALL, SPACE_CIRCUIT_OPEN, SPACE_ERRORS

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobs.keys import Keys
    from jobs.settings import Settings
    from sandbox.pool import DecodePool

__all__ = ["CallResult", "Readiness", "SpaceCaller"]

log = get_logger("consumers.space_call")

STARTUP_CHECK_S = 60.0
# "Try again in 0:00:00" happens (an HF accounting quirk) and would make the token look usable
# at once; rest it a minute instead of hammering it.
ZERO_WAIT_COOLDOWN_S = 60.0
SWEEP_EVERY_S = 600.0
_TOKEN_LIKE = re.compile(r"hf_[A-Za-z0-9]{8,}")


@dataclass(frozen=True, slots=True)
class CallResult:
    data: bytes
    media_type: str
    token_alias: str  # "anonymous" when no token is configured


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether the Space has the endpoint we call; `reason` says what is wrong when not."""

    ready: bool
    reason: str = ""
    parameters: tuple[str, ...] = ()


class _QuotaRefused(Exception):
    """Internal: this token is out of quota (now cooling); try the next one."""


class SpaceCaller:
    def __init__(
        self, settings: Settings, redis: Redis, keys: Keys, tokens: TokenSet, decoder: DecodePool
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self.decoder = decoder  # checks every picture the Space returns (consumers/result_check.py)
        self.pool = TokenPool(
            redis,
            keys,
            tokens,
            max_in_flight=settings.effective_token_max_in_flight(has_tokens=not tokens.anonymous),
            lease_s=settings.lease_seconds,
            gpu_seconds_per_call=settings.gpu_seconds_per_call,
        )
        self._timeout_s = settings.call_timeout_seconds
        self._breaker = CircuitBreaker(open_s=settings.breaker_open_seconds)
        self._readiness = Readiness(False, "not checked yet")
        self._download_dir = Path(tempfile.mkdtemp(prefix="ghibli-space-"))
        self._sessions: dict[str, SpaceSession] = {}
        self._last_sweep = 0.0

    @classmethod
    async def open(
        cls,
        settings: Settings,
        redis: Redis,
        keys: Keys,
        decoder: DecodePool,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> SpaceCaller:
        """Load the tokens (raises TokenConfigError), register them, check the Space's endpoint."""
        tokens = load_tokens(os.environ if environ is None else environ, settings.hf_tokens_file)
        check_token_transport(settings.space, tokens, settings.space_plaintext_hosts)
        caller = cls(settings, redis, keys, tokens, decoder)
        caller._log_tokens()
        try:
            await caller.pool.register()
            await caller.check_space()
        except BaseException:
            await caller.aclose()  # the caller may retry open() while Redis is down
            raise
        return caller

    def _log_tokens(self) -> None:
        for token in self.tokens.rejected:
            log.error("hf token rejected", token=token.alias, source=token.source, problem=token.problem)
        if self.tokens.anonymous and _on_hugging_face(self.settings.space):
            log.warning("no hf token configured: anonymous calls use this machine's IP quota")
        elif self.tokens.anonymous:  # a self-hosted or offline Space has no ZeroGPU quota to spend
            log.info("no hf token configured: anonymous calls", space=self.settings.space)
        else:
            log.info(
                "hf tokens",
                tokens=[f"{t.alias} ({t.source})" for t in self.tokens.usable],
                max_in_flight=self.pool.max_in_flight,
            )

    # --- readiness and the circuit breaker ------------------------------------------------------

    def readiness(self) -> Readiness:
        return self._readiness

    def paused_until(self) -> float | None:
        """Unix time until which no new job should be claimed (circuit open), or None."""
        until = self._breaker.open_until()
        SPACE_CIRCUIT_OPEN.set(1 if until is not None else 0)  # the worker asks before each claim
        return until

    async def check_space(self) -> Readiness:
        """Connect and confirm the endpoint and its parameters; not ready opens the breaker."""
        session = self._session(self.pool.aliases[0])
        error: SpaceError | None = None
        try:
            with anyio.fail_after(STARTUP_CHECK_S):
                await anyio.to_thread.run_sync(session.connect, abandon_on_cancel=True)
        except TimeoutError:
            error = SpaceError(
                ErrorKind.BROKEN,
                "space_unavailable",
                f"The Space did not answer within {STARTUP_CHECK_S:.0f} s.",
            )
        except SpaceError as exc:
            error = self._scrub(exc)
        if error is None:
            await self._set_ready(session)
        else:
            await self._set_not_ready(error)
            await self._trip(error)
        return self._readiness

    async def _set_ready(self, session: SpaceSession) -> None:
        if self._readiness.ready and self._readiness.parameters == session.parameters:
            return
        self._readiness = Readiness(True, parameters=session.parameters)
        variant = "8-parameter" if len(session.parameters) == 8 else "older 6-parameter"
        log.info("space ready", space=_shown(self.settings.space), signature=variant)
        await self._write_space(
            {
                ts.S_READY: "1",
                ts.S_REASON: "",
                ts.S_SIGNATURE: ",".join(session.parameters),
                ts.S_CHECKED_AT: now_ms(),
            }
        )

    async def _set_not_ready(self, error: SpaceError) -> None:
        self._readiness = Readiness(False, f"{error.code}: {error.message}")
        log.error("space not ready", space=_shown(self.settings.space), code=error.code, reason=error.message)
        await self._write_space(
            {ts.S_READY: "0", ts.S_REASON: self._readiness.reason, ts.S_CHECKED_AT: now_ms()}
        )

    async def _trip(self, error: SpaceError) -> None:
        until = self._breaker.trip(f"{error.code}: {error.message}")
        await self._announce_breaker(until)

    async def _announce_breaker(self, until: float) -> None:
        SPACE_CIRCUIT_OPEN.set(1)
        log.warning(
            "circuit open: claiming paused",
            until=datetime.fromtimestamp(until, tz=UTC).isoformat(),
            reason=self._breaker.reason,
        )
        await self._write_space(
            {ts.S_BREAKER_UNTIL: int(until * 1000), ts.S_BREAKER_REASON: self._breaker.reason}
        )

    async def _write_space(self, fields: Mapping[str, object]) -> None:
        try:
            await self.pool.set_space(**fields)
        except RedisError as exc:  # status for operators only: never worth failing a call
            log.warning("space status not written", error=str(exc))

    def _paused_error(self, until: float) -> SpaceError:
        reason = self._breaker.reason or "the Space is paused or broken"
        return SpaceError(
            ErrorKind.BROKEN,
            "space_paused",
            f"Calls to the Space pause until {datetime.fromtimestamp(until, tz=UTC):%H:%M:%S} UTC: {reason}",
            retry_after_s=max(1.0, until - time.time()),
        )

    # --- one call -----------------------------------------------------------------------------

    async def call(
        self,
        params: JobParams,
        photo: bytes | Path,
        *,
        on_update: Callable[[SpaceUpdate], None],
        stop: threading.Event,
    ) -> CallResult:
        """Run one generation. Raises SpaceError, or QuotaWait when every token is cooling.

        `photo`: its bytes (or the file they are in). `on_update` is called on the event loop;
        `stop` (set by the caller) abandons the call.
        """
        deadline = time.monotonic() + self._timeout_s
        if isinstance(photo, Path):
            photo = await anyio.Path(photo).read_bytes()
        refused: set[str] = set()
        while True:
            lease = await self._take_token(refused, deadline, on_update, stop)
            try:
                return await self._call_with(lease, params, photo, deadline, on_update, stop)
            except _QuotaRefused:
                refused.add(lease.alias)

    async def _take_token(
        self,
        refused: set[str],
        deadline: float,
        on_update: Callable[[SpaceUpdate], None],
        stop: threading.Event,
    ) -> Lease:
        """A slot on the best token; waits while all are busy, raises when none can be used."""
        told = False
        while True:
            until = self._breaker.open_until()
            if until is not None:
                raise self._paused_error(until)
            got = await self.pool.acquire(refused)
            if got.lease is not None:
                return got.lease
            if got.verdict is AcquireVerdict.COOLING:
                raise QuotaWait(got.until_ms)
            if got.verdict is AcquireVerdict.PAUSED:
                self._breaker.adopt(got.until_ms / 1000, "another consumer found the Space paused or broken")
                raise self._paused_error(got.until_ms / 1000)
            if stop.is_set():
                raise SpaceError(ErrorKind.PERMANENT, "cancelled", "The job was cancelled.")
            if time.monotonic() > deadline:
                raise SpaceError(
                    ErrorKind.TRANSIENT,
                    "tokens_busy",
                    f"Every HF token stayed busy for {self._timeout_s:.0f} s.",
                )
            if not told:
                on_update(SpaceUpdate(phase="waiting_for_token"))
                told = True
            await anyio.sleep(0.2 + random.random() * 0.3)  # noqa: S311 - jitter, not crypto

    async def _call_with(
        self,
        lease: Lease,
        params: JobParams,
        photo: bytes,
        deadline: float,
        on_update: Callable[[SpaceUpdate], None],
        stop: threading.Event,
    ) -> CallResult:
        session = self._session(lease.alias)
        trace = CallTrace()
        generate = partial(
            session.agenerate,
            photo,
            params,
            timeout_s=max(1.0, deadline - time.monotonic()),
            on_update=on_update,
            should_stop=stop.is_set,
            trace=trace,
        )
        started = time.monotonic()
        error: SpaceError | None = None
        output: tuple[bytes, str] | None = None
        with structlog.contextvars.bound_contextvars(token=lease.alias):
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._keep_lease, lease)
                    try:
                        data = await generate()  # cancelling this task cancels the Space's job
                        output = await check_result(self.decoder, data, params, photo)
                    except Exception as exc:  # noqa: BLE001 - every failure is classified
                        error = self._scrub(classify(exc))
                    tg.cancel_scope.cancel()
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await self._release(lease, Outcome.ABANDONED)
                raise
            for notice in trace.notices:
                log.warning("space notice", notice=notice)
            await self._sweep_now_and_then()
            return await self._settle(lease, output, error, trace, time.monotonic() - started, session)

    async def _settle(
        self,
        lease: Lease,
        output: tuple[bytes, str] | None,
        error: SpaceError | None,
        trace: CallTrace,
        elapsed: float,
        session: SpaceSession,
    ) -> CallResult:
        """Record the call's outcome on its token and the breaker; return or raise."""
        if error is None and output is not None:
            SPACE_CALL.labels("succeeded").observe(elapsed)
            await self._release(lease, Outcome.SUCCESS, charge_gpu=True)
            await self._record_success(session)
            return CallResult(output[0], output[1], lease.alias)
        assert error is not None
        SPACE_CALL.labels(error.kind.value).observe(elapsed)
        SPACE_ERRORS.labels(error.kind.value, error.code).inc()
        if error.kind is ErrorKind.QUOTA:
            await self._cool(lease, error)
            raise _QuotaRefused
        outcome = Outcome.ABANDONED if error.code == "cancelled" else Outcome.FAILURE
        await self._release(lease, outcome, error_code=error.code, charge_gpu=trace.processing)
        if error.code in ("endpoint_missing", "space_signature"):
            await self._set_not_ready(error)
        if self._breaker.record(error):
            await self._announce_breaker(self._breaker.open_until() or time.time())
        log.info("space call failed", code=error.code, kind=error.kind.value)
        raise error

    async def _record_success(self, session: SpaceSession) -> None:
        was_open = self._breaker.state != "closed"
        self._breaker.record(None)
        if was_open:
            SPACE_CIRCUIT_OPEN.set(0)
            log.info("circuit closed: the Space answers again")
            await self._write_space({ts.S_BREAKER_UNTIL: 0, ts.S_BREAKER_REASON: ""})
        await self._set_ready(session)

    async def _cool(self, lease: Lease, error: SpaceError) -> None:
        wait_s = error.retry_after_s
        if wait_s is None:
            wait_s = self.settings.quota_cooldown_seconds
        elif wait_s < 1:
            wait_s = ZERO_WAIT_COOLDOWN_S
        until_ms = now_ms() + int(wait_s * 1000)
        await self._release(
            lease,
            Outcome.QUOTA,
            error_code=error.code,
            cooldown_until_ms=until_ms,
            requested_s=error.requested_s or 0,
        )
        QUOTA_COOLDOWNS.labels(token=lease.alias).inc()
        log.warning(
            "token cooling",
            token=lease.alias,
            until=datetime.fromtimestamp(until_ms / 1000, tz=UTC).isoformat(),
            parsed=error.retry_after_s is not None,
            code=error.code,
        )

    async def _release(self, lease: Lease, outcome: Outcome, **details: object) -> None:
        try:
            await self.pool.release(lease, outcome, **details)  # type: ignore[arg-type]
        except RedisError as exc:
            # The lease runs out by itself; losing a counter is better than losing the result.
            log.warning("token release failed", token=lease.alias, error=str(exc))

    async def _keep_lease(self, lease: Lease) -> None:
        """Renew the token slot while the call runs, so it outlives slow Spaces but not us."""
        period = max(0.5, self.pool.lease_ms / 3000)
        while True:
            await anyio.sleep(period)
            try:
                if not await self.pool.renew(lease):
                    log.warning("token lease had expired", token=lease.alias)
            except RedisError as exc:
                log.warning("token lease not renewed", token=lease.alias, error=str(exc))

    # --- helpers ------------------------------------------------------------------------------

    def _session(self, alias: str) -> SpaceSession:
        session = self._sessions.get(alias)
        if session is None:
            session = SpaceSession(
                self.settings.space,
                self.tokens.secret(alias),
                download_dir=self._download_dir,
                max_calls=self.settings.concurrency,
            )
            self._sessions[alias] = session
        return session

    def _scrub(self, error: SpaceError) -> SpaceError:
        """The error without any token text in it: messages end up in Redis and in logs."""
        message = error.message
        for token in self.tokens.usable + self.tokens.rejected:
            message = message.replace(token.secret, token.alias)
        message = _TOKEN_LIKE.sub("hf_***", message)
        if message == error.message:
            return error
        return SpaceError(
            error.kind, error.code, message, retry_after_s=error.retry_after_s, requested_s=error.requested_s
        )

    async def _sweep_now_and_then(self) -> None:
        if time.monotonic() - self._last_sweep > SWEEP_EVERY_S:
            self._last_sweep = time.monotonic()
            await anyio.to_thread.run_sync(sweep_download_leftovers)

    async def aclose(self) -> None:
        for session in self._sessions.values():
            session.close()
        shutil.rmtree(self._download_dir, ignore_errors=True)


def _shown(space: str) -> str:
    """The Space id or URL as logged: credentials in a URL cut out."""
    return re.sub(r"(://)[^/@]*@", r"\1***@", space)


def _on_hugging_face(space: str) -> bool:
    """A Space id, or a URL served by Hugging Face: calls there spend a ZeroGPU quota."""
    if not space.startswith(("http://", "https://")):
        return True
    host = (urlsplit(space).hostname or "").lower()
    return host.endswith((".hf.space", "huggingface.co"))
