"""The jobs API: submit a photo, read a job's status, fetch its result, cancel it."""

from __future__ import annotations

import secrets
from typing import Annotated

import anyio.to_thread
import msgspec
from litestar import Controller, Response, delete, get, post
from litestar.datastructures import ResponseHeader, UploadFile
from litestar.di import NamedDependency
from litestar.params import FromPath, MultipartBody
from litestar.status_codes import HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from ingest.images import PhotoRejected, normalize_photo
from ingest.problems import Problem
from ingest.services import Services
from jobs.model import (
    DEFAULT_PROMPT,
    SEED_MAX,
    SIZE_MAX,
    SIZE_MIN,
    SIZE_STEP,
    JobParams,
    JobRecord,
    Status,
    new_job_id,
)
from jobs.wire import JobView, job_view

__all__ = ["JobForm", "JobsController", "default_size"]

JobId = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{32}$")]


class JobForm(msgspec.Struct, kw_only=True):
    """The multipart form of a submission. Fields arrive as text; empty means "default"."""

    image: UploadFile | None = None
    prompt: str | None = None
    width: str | None = None
    height: str | None = None
    seed: str | None = None
    use_zero_init: str | None = None
    zero_steps: str | None = None


def default_size(photo_w: int, photo_h: int, longest: int = 768) -> tuple[int, int]:
    """Keep the photo's aspect ratio, longest side `longest`, both sides snapped to 64."""
    scale = longest / max(photo_w, photo_h)

    def snap(v: float) -> int:
        return int(min(SIZE_MAX, max(SIZE_MIN, round(v / SIZE_STEP) * SIZE_STEP)))

    return snap(photo_w * scale), snap(photo_h * scale)


def _int_field(name: str, raw: str | None, lo: int, hi: int, step: int = 1) -> int | None:
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise Problem(422, "invalid_parameter", f"{name} must be a whole number.", field=name) from None
    if not lo <= value <= hi or (value - lo) % step:
        rule = f"between {lo} and {hi}" + (f" in steps of {step}" if step > 1 else "")
        raise Problem(422, "invalid_parameter", f"{name} must be {rule}; got {value}.", field=name)
    return value


def _bool_field(name: str, raw: str | None) -> bool | None:
    if raw is None or raw.strip() == "":
        return None
    value = raw.strip().lower()
    if value in ("1", "true", "on", "yes"):
        return True
    if value in ("0", "false", "off", "no"):
        return False
    raise Problem(422, "invalid_parameter", f"{name} must be true or false.", field=name)


async def _read_upload(upload: UploadFile | None, max_bytes: int) -> bytes:
    if upload is None:
        raise Problem(422, "missing_image", "Attach the photo as the multipart field 'image'.", field="image")
    try:
        data = await upload.read(max_bytes + 1)
    finally:
        await upload.close()
    if len(data) > max_bytes:
        raise Problem(413, "image_too_large", f"The photo is larger than {max_bytes:,} bytes.")
    return data


def parse_params(form: JobForm, photo_w: int, photo_h: int) -> JobParams:
    prompt = (form.prompt or "").strip() or DEFAULT_PROMPT
    if len(prompt) > 500:
        raise Problem(422, "invalid_parameter", "prompt must be at most 500 characters.", field="prompt")
    width = _int_field("width", form.width, SIZE_MIN, SIZE_MAX, SIZE_STEP)
    height = _int_field("height", form.height, SIZE_MIN, SIZE_MAX, SIZE_STEP)
    if width is None or height is None:
        auto_w, auto_h = default_size(photo_w, photo_h)
        width, height = width or auto_w, height or auto_h
    seed = _int_field("seed", form.seed, 0, SEED_MAX)
    return JobParams(
        prompt=prompt,
        width=width,
        height=height,
        seed=secrets.randbelow(SEED_MAX + 1) if seed is None else seed,
        use_zero_init=bool(_bool_field("use_zero_init", form.use_zero_init)),
        zero_steps=_int_field("zero_steps", form.zero_steps, 0, 50) or 1,
    )


async def _job_or_404(services: Services, job_id: str) -> JobRecord:
    record = await services.store.get(job_id)
    if record is None:
        raise Problem(404, "job_not_found", "No such job.", "It never existed, expired or was deleted.")
    return record


class JobsController(Controller):
    path = "/v1/jobs"
    tags = ["jobs"]  # noqa: RUF012 - Litestar's declaration style

    @post(
        "/",
        status_code=HTTP_202_ACCEPTED,
        summary="Submit a photo",
        response_headers=[
            ResponseHeader(name="Location", description="The job's URL", documentation_only=True)
        ],
    )
    async def submit(
        self, data: MultipartBody[JobForm], services: NamedDependency[Services]
    ) -> Response[JobView]:
        settings = services.settings
        raw = await _read_upload(data.image, settings.max_upload_bytes)
        try:
            photo = await anyio.to_thread.run_sync(
                lambda: normalize_photo(raw, max_pixels=settings.max_pixels)
            )
        except PhotoRejected as exc:
            raise Problem(exc.status, exc.code, exc.message, field="image") from None
        params = parse_params(data, photo.width, photo.height)
        job_id = new_job_id()
        input_key = f"in/{job_id}"
        await services.blobs.put(input_key, photo.data, settings.blob_ttl_seconds)
        await services.store.create(job_id, params, input_key=input_key, input_digest=photo.digest)
        record = await _job_or_404(services, job_id)
        view = job_view(record)
        return Response(view, status_code=HTTP_202_ACCEPTED, headers={"Location": view.links.self})

    @get("/{job_id:str}", summary="A job's status")
    async def status(self, job_id: FromPath[JobId], services: NamedDependency[Services]) -> JobView:
        return job_view(await _job_or_404(services, job_id))

    @get(
        "/{job_id:str}/result",
        summary="The finished picture",
        media_type="image/webp",
        response_description="The image",
    )
    async def result(self, job_id: FromPath[JobId], services: NamedDependency[Services]) -> Response[bytes]:
        record = await _job_or_404(services, job_id)
        if record.status is not Status.SUCCEEDED:
            if record.status.terminal:
                raise Problem(
                    409,
                    "job_not_succeeded",
                    f"The job {record.status.value}; it has no result.",
                    job_status=record.status.value,
                )
            raise Problem(
                409, "result_not_ready", "The job has not finished yet.", job_status=record.status.value
            )
        data = await services.blobs.get(record.result_key)
        if data is None:
            raise Problem(410, "result_expired", "The result has expired.")
        return Response(
            data,
            media_type=record.result_type or "image/webp",
            headers={
                "ETag": f'"{record.id}-{record.attempt}"',
                "Content-Disposition": f'inline; filename="{_filename(record)}"',
                "Cache-Control": "private, max-age=3600",
            },
        )

    @delete("/{job_id:str}", status_code=HTTP_204_NO_CONTENT, summary="Cancel and erase a job")
    async def cancel(self, job_id: FromPath[JobId], services: NamedDependency[Services]) -> None:
        record = await _job_or_404(services, job_id)
        await services.store.cancel(job_id)
        keys = [record.input_key] + ([record.result_key] if record.result_key else [])
        await services.blobs.delete(*keys)
        await services.store.erase(job_id)


def _filename(record: JobRecord) -> str:
    ext = {"image/png": "png", "image/jpeg": "jpg"}.get(record.result_type, "webp")
    return f"ghibli-{record.id[:8]}.{ext}"
