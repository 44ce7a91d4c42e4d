"""The submission form and its parameters, checked with messages that say what to send instead.

Form fields arrive as text and HTML forms send "" for empty inputs, so every field is optional text
here and "" means "use the default". Explicit values are checked before the photo is decoded (cheap
errors first); the size default needs the photo's aspect ratio and is filled in afterwards.
"""

# No `from __future__ import annotations` here: Litestar reads JobForm's type hints on every
# multipart request, and string annotations make that 5x slower (~160 us instead of ~30 us).

import secrets
from dataclasses import dataclass
from typing import Annotated

import msgspec
from litestar.datastructures import UploadFile
from msgspec import Meta

from ingest.problems import Problem
from jobs.model import DEFAULT_PROMPT, SEED_MAX, SIZE_MAX, SIZE_MIN, SIZE_STEP, JobParams

__all__ = ["PROMPT_MAX", "JobForm", "Requested", "default_size", "parse_form"]

PROMPT_MAX = 500
DEFAULT_LONGEST_SIDE = 768
ZERO_STEPS_MAX = 50


class JobForm(msgspec.Struct, kw_only=True):
    """The multipart form of a submission (`image` is required; the rest may be absent or empty)."""

    image: Annotated[
        UploadFile | None, Meta(description="The photo: JPEG, PNG, WebP, GIF or HEIC/HEIF (required).")
    ] = None
    prompt: Annotated[
        str | None, Meta(description=f"Up to {PROMPT_MAX} characters; default: {DEFAULT_PROMPT!r}.")
    ] = None
    width: Annotated[
        str | None,
        Meta(
            description="256-1024 in steps of 64; default keeps the photo's aspect ratio (longest side 768)."
        ),
    ] = None
    height: Annotated[
        str | None,
        Meta(
            description="256-1024 in steps of 64; default keeps the photo's aspect ratio (longest side 768)."
        ),
    ] = None
    seed: Annotated[str | None, Meta(description="0-4294967295; default random (returned in params).")] = None
    use_zero_init: Annotated[str | None, Meta(description="true or false (default false).")] = None
    zero_steps: Annotated[str | None, Meta(description=f"0-{ZERO_STEPS_MAX} (default 1).")] = None
    webhook_url: Annotated[
        str | None,
        Meta(
            description="Call this https URL back with signed Standard Webhooks (docs/webhooks.md); its "
            "addresses must be public."
        ),
    ] = None
    webhook_events: Annotated[
        str | None,
        Meta(description="Which events, comma-separated: started, progress, completed (default completed)."),
    ] = None

    def text_fields(self) -> dict[str, str]:
        """The text fields as sent, for the Idempotency-Key fingerprint."""
        return {
            name: (getattr(self, name) or "").strip()
            for name in (
                "prompt",
                "width",
                "height",
                "seed",
                "use_zero_init",
                "zero_steps",
                "webhook_url",
                "webhook_events",
            )
        }


@dataclass(frozen=True, slots=True)
class Requested:
    """Checked parameters; None where the default applies."""

    prompt: str
    width: int | None
    height: int | None
    seed: int | None
    use_zero_init: bool
    zero_steps: int

    def resolve(self, photo_w: int, photo_h: int) -> JobParams:
        """Fill in the defaults: the photo's aspect ratio for a missing side, a random seed."""
        width, height = self.width, self.height
        if width is None and height is None:
            width, height = default_size(photo_w, photo_h)
        elif width is None:
            assert height is not None
            width = _snap(height * photo_w / photo_h)
        elif height is None:
            height = _snap(width * photo_h / photo_w)
        return JobParams(
            prompt=self.prompt,
            width=width,
            height=height,
            seed=secrets.randbelow(SEED_MAX + 1) if self.seed is None else self.seed,
            use_zero_init=self.use_zero_init,
            zero_steps=self.zero_steps,
        )


def _snap(value: float) -> int:
    return int(min(SIZE_MAX, max(SIZE_MIN, round(value / SIZE_STEP) * SIZE_STEP)))


def default_size(photo_w: int, photo_h: int, longest: int = DEFAULT_LONGEST_SIDE) -> tuple[int, int]:
    """Keep the photo's aspect ratio, longest side `longest`, both sides snapped to 64."""
    scale = longest / max(photo_w, photo_h)
    return _snap(photo_w * scale), _snap(photo_h * scale)


def _int_field(name: str, raw: str | None, lo: int, hi: int, step: int = 1) -> int | None:
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise Problem(
            422,
            "invalid_parameter",
            "Invalid parameter",
            f"{name} must be a whole number; got {raw.strip()[:40]!r}.",
            field=name,
        ) from None
    if not lo <= value <= hi or (value - lo) % step:
        rule = f"between {lo} and {hi}" + (f" in steps of {step}" if step > 1 else "")
        raise Problem(
            422, "invalid_parameter", "Invalid parameter", f"{name} must be {rule}; got {value}.", field=name
        )
    return value


def _bool_field(name: str, raw: str | None) -> bool | None:
    if raw is None or raw.strip() == "":
        return None
    value = raw.strip().lower()
    if value in ("1", "true", "on", "yes"):
        return True
    if value in ("0", "false", "off", "no"):
        return False
    raise Problem(
        422,
        "invalid_parameter",
        "Invalid parameter",
        f"{name} must be true or false; got {raw.strip()[:40]!r}.",
        field=name,
    )


def parse_form(form: JobForm) -> Requested:
    """Check the text fields; raises Problem(422, invalid_parameter) naming the field."""
    prompt = (form.prompt or "").strip() or DEFAULT_PROMPT
    if len(prompt) > PROMPT_MAX:
        raise Problem(
            422,
            "invalid_parameter",
            "Invalid parameter",
            f"prompt must be at most {PROMPT_MAX} characters; got {len(prompt)}.",
            field="prompt",
        )
    zero_steps = _int_field("zero_steps", form.zero_steps, 0, ZERO_STEPS_MAX)
    return Requested(
        prompt=prompt,
        width=_int_field("width", form.width, SIZE_MIN, SIZE_MAX, SIZE_STEP),
        height=_int_field("height", form.height, SIZE_MIN, SIZE_MAX, SIZE_STEP),
        seed=_int_field("seed", form.seed, 0, SEED_MAX),
        use_zero_init=bool(_bool_field("use_zero_init", form.use_zero_init)),
        zero_steps=1 if zero_steps is None else zero_steps,
    )
