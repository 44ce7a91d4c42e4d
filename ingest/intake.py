"""From a multipart form to an accepted job: the one submission path of /v1/jobs and the compat route.

Cheap checks run first (parameters, size, Idempotency-Key replay), the photo is decoded only when
the request can still be accepted, and every refusal is counted by its problem code.
"""

from __future__ import annotations

import hashlib
import re

import msgspec
from litestar.datastructures import UploadFile
from redis.exceptions import RedisError

from ingest.auth import ANONYMOUS_CALLER, Caller
from ingest.disconnect import Receive, unless_disconnected
from ingest.fair_share import TooManyUnfinished
from ingest.params import JobForm, Requested, parse_form
from ingest.problems import Problem, image_problem
from ingest.services import Services
from ingest.submit import Accepted, IdempotencyConflict, idempotency_digest, request_fingerprint
from jobs.durable import NotDurable
from jobs.logs import get_logger
from jobs.model import new_job_id
from jobs.redis_conn import REDIS_DOWN
from jobs.wire import JobView
from metrics.definitions import (
    JOBS_DEDUPLICATED,
    JOBS_REJECTED,
    JOBS_SUBMITTED,
    JOBS_SUBMITTED_BY_KEY,
    SUBMISSIONS_NOT_DURABLE,
)
from sandbox.errors import ImageRefused
from sandbox.jfif import stored_as_sent
from sandbox.photo import MIN_SIDE, STORED_MAX_SIDE, NormalizedPhoto
from sandbox.probe import probe

__all__ = ["IDEMPOTENCY_KEY_MAX", "accept_submission", "accepted_view"]

IDEMPOTENCY_KEY_MAX = 255
_IDEMPOTENCY_KEY = re.compile(rf"[\x21-\x7e]{{1,{IDEMPOTENCY_KEY_MAX}}}")
UNFINISHED_RETRY_AFTER_S = 10

log = get_logger("ingest.intake")


async def accept_submission(
    services: Services,
    form: JobForm,
    *,
    idempotency_key: str | None = None,
    caller: Caller = ANONYMOUS_CALLER,
    receive: Receive | None = None,
) -> Accepted:
    """Validate, deduplicate and queue one submission; raises Problem for anything refused.

    `caller` (ingest/auth.py) scopes Idempotency-Keys (its API key id), is recorded on the job and
    bounds the key's unfinished jobs. `receive` (the request's) lets the decode stop when the
    client goes away.
    """
    try:
        try:
            accepted = await _accept(services, form, idempotency_key, caller, receive)
        except NotDurable as exc:
            raise await _not_durable(services, exc, kept=idempotency_key is not None) from None
    except Problem as problem:
        JOBS_REJECTED.labels(reason=problem.code).inc()
        raise
    if accepted.outcome == "replay":
        JOBS_DEDUPLICATED.labels(kind="idempotency").inc()
    else:
        JOBS_SUBMITTED.inc()
        JOBS_SUBMITTED_BY_KEY.labels(key=caller.label).inc()
        if accepted.outcome == "cache_hit":
            JOBS_DEDUPLICATED.labels(kind="cache").inc()
        elif accepted.outcome == "merged":  # a job of its own, sharing an identical job's Space call
            JOBS_DEDUPLICATED.labels(kind="in_flight").inc()
    log.info("submission accepted", job_id=accepted.job_id, key_id=caller.label, outcome=accepted.outcome)
    return accepted


async def _accept(
    services: Services, form: JobForm, idempotency_key: str | None, caller: Caller, receive: Receive | None
) -> Accepted:
    settings = services.settings
    requested = parse_form(form)
    job_id = new_job_id()
    extra = await services.webhooks.subscription(job_id, form.webhook_url, form.webhook_events, caller)
    if caller.key_id:
        extra["key_id"] = caller.key_id
    raw = await _read_upload(form.image, settings.max_upload_bytes)
    fingerprint = request_fingerprint(hashlib.sha256(raw).hexdigest(), form.text_fields())
    idem: str | None = None
    if idempotency_key is not None:
        if not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
            raise Problem(
                400,
                "invalid_idempotency_key",
                "Bad Idempotency-Key",
                f"The Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} visible ASCII characters.",
            )
        # Scoped to the caller: its API key, or its address for anonymous callers, so a key one
        # client chose never answers another client with the first one's job.
        idem = idempotency_digest(idempotency_key, caller.key_id or caller.client)
        try:
            prior = await services.submissions.prior(idem, fingerprint)
        except IdempotencyConflict as exc:
            raise _conflict(exc) from None
        if prior is not None:
            return prior
    limit = caller.key.max_unfinished if caller.key else settings.max_unfinished_per_client
    try:
        async with services.unfinished.slot(caller.client, limit) as slot:
            accepted = await _queue(
                services, job_id, requested, raw, idem, fingerprint, extra, caller, receive
            )
            if accepted.outcome in ("queued", "merged"):
                slot.hold(accepted.job_id)
    except TooManyUnfinished as exc:
        raise Problem(
            429,
            "too_many_unfinished_jobs",
            "Too many unfinished jobs",
            f"{'This API key' if caller.key else 'This client'} may have at most {exc.limit} unfinished "
            "jobs; retry when one has finished.",
            headers={"Retry-After": str(UNFINISHED_RETRY_AFTER_S)},
        ) from None
    return accepted


async def _queue(
    services: Services,
    job_id: str,
    requested: Requested,
    raw: bytes,
    idem: str | None,
    fingerprint: str,
    extra: dict[str, str],
    caller: Caller,
    receive: Receive | None,
) -> Accepted:
    """Check the photo (headers here; pixels, unless stored as sent, in the sandbox), create the job."""
    limits = {"max_pixels": services.settings.max_pixels, "max_scans": services.settings.max_jpeg_scans}
    try:
        probe(raw, **limits)  # most hostile files end here, in microseconds
        plain = stored_as_sent(
            raw, max_side=STORED_MAX_SIDE, min_side=MIN_SIDE, max_pixels=limits["max_pixels"]
        )
        if plain is not None:  # a browser's JFIF JPEG: stored as sent, nothing to decode
            photo = NormalizedPhoto(None, *plain)
        else:
            photo = await unless_disconnected(
                receive, lambda: services.decoder.normalize(raw, **limits, client=caller.client)
            )
    except ImageRefused as exc:
        raise image_problem(exc) from None
    stored = photo.stored(raw)
    await _charge_storage(services, caller, len(stored))
    params = requested.resolve(photo.width, photo.height)
    try:
        return await services.submissions.submit(
            job_id,
            params,
            photo=stored,
            input_digest=photo.digest(raw),
            idem_digest=idem,
            fingerprint=fingerprint,
            extra=extra,
            engine=services.engine.current,
            space=services.settings.space,
        )
    except IdempotencyConflict as exc:
        raise _conflict(exc) from None


async def _not_durable(services: Services, exc: NotDurable, *, kept: bool) -> Problem:
    """The job is on the primary but the replicas did not confirm it in time (GHIBLI_DURABLE_*):
    a fail-over now could lose it, so it is not accepted. With an Idempotency-Key it is kept, and
    the retry's 202 comes once the replicas have it; without one it is withdrawn, so the client's
    retry does not make a second job."""
    accepted = exc.reply if isinstance(exc.reply, Accepted) else None
    SUBMISSIONS_NOT_DURABLE.inc()
    log.warning("submission not durable", confirmed=exc.confirmed, wanted=exc.wanted, kept=kept)
    if accepted is not None and not kept and accepted.outcome != "replay":
        try:
            await services.submissions.forget(accepted.job_id)
        except REDIS_DOWN as error:  # it then runs although the client saw 503; logged, not hidden
            log.warning("could not withdraw the job", job_id=accepted.job_id, error=type(error).__name__)
    how = "Retry with the same Idempotency-Key." if kept else "Retry the submission."
    return Problem(
        503,
        "not_durable",
        "Not confirmed by the replicas",
        f"The Redis replicas did not confirm the job in time, so a fail-over could lose it. {how}",
        headers={"Retry-After": "1"},
    )


async def _charge_storage(services: Services, caller: Caller, size: int) -> None:
    """The stored photo counts against the client's bytes per window (ingest/fair_share.py)."""
    limit = services.settings.max_stored_bytes_per_client
    try:
        decision = await services.stored.charge(caller.client, size, limit)
    except RedisError as exc:
        log.warning("storage quota unavailable", error=type(exc).__name__)
        return  # without Redis the submission fails on its own a moment later
    if not decision.allowed:
        raise Problem(
            429,
            "storage_quota_exceeded",
            "Too much stored",
            f"This client has had {decision.used:,} bytes of photos stored in this window; at most "
            f"{limit:,} are kept per {services.settings.blob_ttl_seconds} s. Retry in "
            f"{decision.retry_after_s} s.",
            headers={"Retry-After": str(decision.retry_after_s)},
        )


def _conflict(exc: IdempotencyConflict) -> Problem:
    return Problem(
        422,
        "idempotency_key_reused",
        "Idempotency-Key already used for another request",
        "This Idempotency-Key was already used with a different photo or different parameters; "
        "use a new key for a new request.",
    )


async def _read_upload(upload: UploadFile | None, max_bytes: int) -> bytes:
    if upload is None:
        raise Problem(
            422, "missing_image", "Attach the photo as the multipart file field 'image'.", field="image"
        )
    try:
        data = await upload.read(max_bytes + 1)
    finally:
        await upload.close()
    if len(data) > max_bytes:
        raise Problem(
            413,
            "payload_too_large",
            "Upload too large",
            f"The photo is larger than {max_bytes:,} bytes.",
            field="image",
        )
    return data


def accepted_view(accepted: Accepted) -> JobView:
    """The 202 body as a typed view, decoded from the stored bytes so a replay is the same document."""
    return msgspec.json.decode(accepted.body, type=JobView)
