"""Submissions: idempotent job creation, the result cache, erasing a job, and the backlog.

Idempotency-Key: the key is stored only as a hash (scoped, so two clients' keys never collide),
mapped to the job it created, a fingerprint of the request (photo bytes + form fields as sent) and
the exact 202 body. The same key and fingerprint within the TTL replay that body; the same key with
another fingerprint is a conflict the caller turns into 422.

Result cache: the same normalized photo with the same parameters (seed included) is answered by a
job created already `succeeded` with `cache_hit` set, without a stream entry or a Space call. The
cached result is *copied* into the new job's own blob: every job owns its blobs, so deleting one job
can never take away a picture another job still shows (the price: a second copy until the blob TTL).

Merged jobs (same switch): while such a job is still unfinished (queued, running, retrying or
waiting for quota), an identical submission becomes its *follower*: a job of its own (own id,
status, photo and result) with no stream entry, sharing the leader's Space call. The leader's
every change is copied to its followers by the script that makes it (jobs/lua/prelude.lua); when
it succeeds, the consumer first copies the picture for each follower (finish.lua insists), and a
failure reaches them as their own. Cancelling a follower only takes it out of the group;
cancelling (erasing) a leader that still has followers *withdraws* it instead of stopping its
call: it disappears for its owner (404, no more webhooks) and its run goes on, on a follower's
copy of the photo, until it ends or no follower is left (jobs/lua/cancel.lua).

Durable acknowledgements (jobs/durable.py): with them on, an answer is returned only once the
replicas confirmed the job, a replay included (its first answer may have been 503 not_durable);
otherwise `NotDurable` reaches the caller, carrying what it would have answered.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from jobs.blobs import CONVERTED_FORMATS, converted_name
from jobs.durable import NotDurable
from jobs.engine import EngineInfo
from jobs.model import JobParams, JobRecord, params_to_hash
from jobs.redis_conn import as_text
from jobs.script_defs import (
    FORGET,
    SUBMIT,
    ForgetArgs,
    ForgetKeys,
    JobVerdict,
    SubmitArgs,
    SubmitKeys,
    SubmitVerdict,
)
from jobs.store import EVENTS_MAXLEN, now_ms
from jobs.wire import job_view

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobs.blobs import BlobStore
    from jobs.keys import Keys
    from jobs.store import JobStore

__all__ = [
    "Accepted",
    "IdempotencyConflict",
    "Submissions",
    "cache_digest",
    "idempotency_digest",
    "request_fingerprint",
]


class IdempotencyConflict(Exception):
    """The Idempotency-Key was already used for a different request."""

    def __init__(self, job_id: str) -> None:
        super().__init__("Idempotency-Key reused with a different request")
        self.job_id = job_id


@dataclass(frozen=True, slots=True)
class Accepted:
    """The answer to a submission: the 202 body (bytes, replayed verbatim) and how it came about."""

    job_id: str
    body: bytes
    outcome: Literal["queued", "merged", "cache_hit", "replay"]


def idempotency_digest(key: str, scope: str = "") -> str:
    """What is stored of an Idempotency-Key: a hash, scoped to the caller (e.g. an API key id)."""
    return hashlib.sha256(f"{scope}\x00{key}".encode()).hexdigest()


def request_fingerprint(upload_digest: str, form: dict[str, str]) -> str:
    """The request as sent: photo bytes and the non-empty form fields (not the random seed)."""
    fields = {k: v for k, v in sorted(form.items()) if v != ""}
    return hashlib.sha256(json.dumps([upload_digest, fields]).encode()).hexdigest()


def cache_digest(input_digest: str, params: JobParams, space: str = "") -> str:
    """The result cache key: the normalized photo, every parameter (seed included) and the Space the
    jobs go to (GHIBLI_SPACE), so a picture of the demo engine is never handed out once the real
    model is connected. The setting, not the engine ingest has identified: that may still be
    "unknown" for the first jobs, and a cache must not miss because a probe was late."""
    parts = [input_digest.encode(), msgspec.json.encode(params)]
    if space:
        parts.append(space.encode())
    return hashlib.sha256(b"\x00".join(parts)).hexdigest()


class Submissions:
    def __init__(
        self,
        store: JobStore,
        blobs: BlobStore,
        *,
        idempotency_ttl_s: int = 86_400,
        result_cache: bool = True,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.idempotency_ttl_s = idempotency_ttl_s
        self.result_cache = result_cache
        self._submit = SUBMIT.load(store.redis)
        self._forget = FORGET.load(store.redis)

    @property
    def redis(self) -> Redis:
        return self.store.redis

    @property
    def keys(self) -> Keys:
        return self.store.keys

    async def prior(self, idem_digest: str, fingerprint: str) -> Accepted | None:
        """A cheap look-up before the photo is decoded: the earlier answer for this key, if any."""
        job, fp, body = await self.redis.hmget(self.keys.idempotency(idem_digest), ["job", "fp", "body"])
        if job is None:
            return None
        if as_text(fp) != fingerprint:
            raise IdempotencyConflict(as_text(job))
        accepted = Accepted(as_text(job), body.encode() if isinstance(body, str) else body or b"", "replay")
        await self._vouch(accepted)
        return accepted

    async def _vouch(self, accepted: Accepted) -> None:
        """A replay answers for a job written earlier, perhaps not yet on the replicas."""
        try:
            await self.store.durability.sync()
        except NotDurable as exc:
            exc.reply = accepted
            raise

    async def submit(
        self,
        job_id: str,
        params: JobParams,
        *,
        photo: bytes,
        input_digest: str,
        idem_digest: str | None = None,
        fingerprint: str = "",
        extra: dict[str, str] | None = None,
        engine: EngineInfo | None = None,
        space: str = "",
    ) -> Accepted:
        """Create the job (from the result cache when possible), or replay the key's earlier answer.
        `engine` is recorded on the job; `space` (GHIBLI_SPACE) keys the result cache."""
        digest = cache_digest(input_digest, params, space)
        cached = await self._cached_result(job_id, digest) if self.result_cache else None
        now = now_ms()
        fields: dict[str, str] = {
            **params_to_hash(params),
            "input_digest": input_digest,
            "created_at": str(now),
            **(extra or {}),
        }
        if engine is not None:
            fields |= {"engine_kind": engine.kind, "engine_name": engine.name}
        if idem_digest is not None:
            fields["idem_key"] = self.keys.idempotency(idem_digest)
        written: list[str] = []
        if cached is not None:
            result_key, result_type = cached
            written.append(result_key)
            fields |= {
                "input_key": "",
                "cache_hit": "1",
                "progress": "1",
                "phase": "done",
                "started_at": str(now),
                "finished_at": str(now),
                "result_key": result_key,
                "result_type": result_type,
            }
            mode, status = "cached", "succeeded"
        else:
            input_key = f"in/{job_id}"
            await self.blobs.put(input_key, photo, self.store.blob_ttl_s)
            written.append(input_key)
            fields |= {"input_key": input_key, "cache_key": self.keys.result_cache(digest)}
            mode, status = "queue", "queued"
        body = self._accepted_body(job_id, {**fields, "status": status, "version": "1"})
        try:
            reply = await self._write(job_id, digest, idem_digest, fingerprint, mode, body, fields)
        except NotDurable as exc:
            if SubmitVerdict.of(exc.reply) is not SubmitVerdict.CREATED:
                reply = exc.reply  # it wrote nothing; a replay vouches for its own job below
            else:
                exc.reply = Accepted(job_id, body, _OUTCOMES[as_text(exc.reply[2])])
                raise
        verdict = SubmitVerdict.of(reply)
        if verdict is SubmitVerdict.CREATED:
            return Accepted(job_id, body, _OUTCOMES[as_text(reply[2])])
        if verdict is SubmitVerdict.REPLAY:
            # A racing request with the same key won; nothing refers to these blobs.
            await self.blobs.delete(*written)
            if not int(reply[2]):
                raise IdempotencyConflict(as_text(reply[1]))
            accepted = Accepted(as_text(reply[1]), bytes(reply[3]) if reply[3] else b"", "replay")
            await self._vouch(accepted)
            return accepted
        raise RuntimeError(f"job id collision: {job_id}")

    async def _write(
        self,
        job_id: str,
        digest: str,
        idem_digest: str | None,
        fingerprint: str,
        mode: str,
        body: bytes,
        fields: dict[str, str],
    ) -> list[Any]:
        """submit.lua, followed by WAIT when durable acknowledgements are on."""
        keys = SubmitKeys(
            job=self.keys.job(job_id),
            stream=self.keys.stream,
            events=self.keys.events,
            idem=self.keys.idempotency(idem_digest or "-"),
            inflight=self.keys.in_flight(digest),
        )
        args = SubmitArgs(
            job_id=job_id,
            job_ttl_s=self.store.job_ttl_s,
            events_maxlen=EVENTS_MAXLEN,
            idem_ttl_s=self.idempotency_ttl_s if idem_digest is not None else 0,
            fingerprint=fingerprint,
            mode=mode,
            accepted_body=body,
            merge=1 if self.result_cache else 0,
            followers_prefix=self.keys.followers(""),
            fields=[item for pair in fields.items() for item in pair],
        )
        reply: list[Any] = await self.store.durability.run(self._submit.script, *SUBMIT.wire(keys, args))
        return reply

    async def _cached_result(self, job_id: str, digest: str) -> tuple[str, str] | None:
        """Copy a live cached result into this job's own blob; None on a miss."""
        source = await self.redis.get(self.keys.result_cache(digest))
        if source is None:
            return None
        data = await self.blobs.get(as_text(source))
        if data is None:  # expired or deleted since: an ordinary miss
            return None
        name = f"out/{job_id}/cached"
        await self.blobs.put(name, data, self.store.blob_ttl_s)
        return name, _media_type(data)

    def _accepted_body(self, job_id: str, fields: dict[str, str]) -> bytes:
        record = JobRecord.from_hash(job_id, {k.encode(): v.encode() for k, v in fields.items()})
        return msgspec.json.encode(job_view(record))

    async def forget(self, job_id: str) -> JobVerdict | None:
        """Cancel (viewers see `cancelled`) and erase a job and its blobs.

        Returns None if there was no such job, else cancel's verdict: 'ok' when this cancelled a
        live job, or the terminal status it already had.
        """
        verdict = await self.store.cancel(job_id)
        if verdict is JobVerdict.MISSING:
            return None
        reply = await self._forget(ForgetKeys(job=self.keys.job(job_id)), ForgetArgs(job_id=job_id))
        input_key, result_key = (as_text(name) for name in reply)
        converted = [converted_name(result_key, fmt) for fmt in CONVERTED_FORMATS] if result_key else []
        await self.blobs.delete(*(name for name in (input_key, result_key, *converted) if name))
        return verdict

    async def backlog(self) -> int:
        """Queued work: stream entries (undelivered + pending; finished ones are deleted) + retries."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xlen(self.keys.stream)
            pipe.zcard(self.keys.delayed)
            length, delayed = await pipe.execute()
        return int(length) + int(delayed)


_OUTCOMES: dict[str, Literal["queued", "merged", "cache_hit"]] = {
    "queued": "queued",
    "merged": "merged",
    "cached": "cache_hit",
}


def _media_type(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    return "image/webp"
