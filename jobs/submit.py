"""Submissions: idempotent job creation, the result cache, erasing a job, and the backlog.

Idempotency-Key: the key is stored only as a hash (scoped, so two clients' keys never collide),
mapped to the job it created, a fingerprint of the request (photo bytes + form fields as sent) and
the exact 202 body. The same key and fingerprint within the TTL replay that body; the same key with
another fingerprint is a conflict the caller turns into 422.

Result cache: the same normalized photo with the same parameters (seed included) is answered by a
job created already `succeeded` with `cache_hit` set, without a stream entry or a Space call. The
cached result is *copied* into the new job's own blob: every job owns its blobs, so deleting one job
can never take away a picture another job still shows (the price: a second copy until the blob TTL).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import msgspec

from jobs.blobs import CONVERTED_FORMATS, converted_name
from jobs.model import JobParams, JobRecord, params_to_hash
from jobs.scripts import load_script
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
    outcome: Literal["queued", "cache_hit", "replay"]


def idempotency_digest(key: str, scope: str = "") -> str:
    """What is stored of an Idempotency-Key: a hash, scoped to the caller (e.g. an API key id)."""
    return hashlib.sha256(f"{scope}\x00{key}".encode()).hexdigest()


def request_fingerprint(upload_digest: str, form: dict[str, str]) -> str:
    """The request as sent: photo bytes and the non-empty form fields (not the random seed)."""
    fields = {k: v for k, v in sorted(form.items()) if v != ""}
    return hashlib.sha256(json.dumps([upload_digest, fields]).encode()).hexdigest()


def cache_digest(input_digest: str, params: JobParams) -> str:
    """The result cache key: the normalized photo and every parameter, seed included."""
    return hashlib.sha256(input_digest.encode() + b"\x00" + msgspec.json.encode(params)).hexdigest()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


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
        self._submit = load_script(store.redis, "submit")
        self._forget = load_script(store.redis, "forget")

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
        if _text(fp) != fingerprint:
            raise IdempotencyConflict(_text(job))
        return Accepted(_text(job), body.encode() if isinstance(body, str) else body or b"", "replay")

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
    ) -> Accepted:
        """Create the job (from the result cache when possible), or replay the key's earlier answer."""
        digest = cache_digest(input_digest, params)
        cached = await self._cached_result(job_id, digest) if self.result_cache else None
        now = now_ms()
        fields: dict[str, str] = {
            **params_to_hash(params),
            "input_digest": input_digest,
            "created_at": str(now),
            **(extra or {}),
        }
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
        reply = await self._submit(
            keys=[
                self.keys.job(job_id),
                self.keys.stream,
                self.keys.events,
                self.keys.idempotency(idem_digest or "-"),
            ],
            args=[
                job_id,
                self.store.job_ttl_s,
                EVENTS_MAXLEN,
                self.idempotency_ttl_s if idem_digest is not None else 0,
                fingerprint,
                mode,
                body,
                *(item for pair in fields.items() for item in pair),
            ],
        )
        verdict = _text(reply[0])
        if verdict == "created":
            return Accepted(job_id, body, "cache_hit" if cached is not None else "queued")
        if verdict == "replay":
            # A racing request with the same key won; nothing refers to these blobs.
            await self.blobs.delete(*written)
            if not int(reply[2]):
                raise IdempotencyConflict(_text(reply[1]))
            return Accepted(_text(reply[1]), bytes(reply[3]) if reply[3] else b"", "replay")
        raise RuntimeError(f"job id collision: {job_id}")

    async def _cached_result(self, job_id: str, digest: str) -> tuple[str, str] | None:
        """Copy a live cached result into this job's own blob; None on a miss."""
        source = await self.redis.get(self.keys.result_cache(digest))
        if source is None:
            return None
        data = await self.blobs.get(_text(source))
        if data is None:  # expired or deleted since: an ordinary miss
            return None
        name = f"out/{job_id}/cached"
        await self.blobs.put(name, data, self.store.blob_ttl_s)
        return name, _media_type(data)

    def _accepted_body(self, job_id: str, fields: dict[str, str]) -> bytes:
        record = JobRecord.from_hash(job_id, {k.encode(): v.encode() for k, v in fields.items()})
        return msgspec.json.encode(job_view(record))

    async def forget(self, job_id: str) -> str | None:
        """Cancel (viewers see `cancelled`) and erase a job and its blobs.

        Returns None if there was no such job, else cancel's verdict: 'ok' when this cancelled a
        live job, or the terminal status it already had.
        """
        verdict = await self.store.cancel(job_id)
        if verdict == "missing":
            return None
        input_key, result_key = (
            _text(name) for name in await self._forget(keys=[self.keys.job(job_id)], args=[job_id])
        )
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


def _media_type(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    return "image/webp"
