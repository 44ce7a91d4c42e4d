"""A ZeroGPU-like Gradio app for tests: the Space's exact endpoint, quota and failures per token.

It reads the caller's HF token from `x-hf-authorization` (Python client) or `Authorization` (JS
client), counts calls per token in a fixed window, and past the allowance raises the real ZeroGPU
quota texts (spaces 0.51.3 plain text, spaces 0.34.1 HTML, older variants). Other modes raise the
other ZeroGPU errors or return wrong pictures, so every error class can be produced by a real
server. Each call's interval is appended to a JSON-lines record (token hashed, never raw), so tests
can check that no token ran two calls at once.

Run: python -m tests.apps.quota_space --port PORT --config CONFIG.json
It serves today's 8-parameter app at /, the older 6-parameter one at /v6/, an app without the
endpoint at /other/ and a one-at-a-time app with a one-place queue at /tiny/.

Config (re-read when the file changes):
    {"delay_s": 0.2, "record": "calls.jsonl", "concurrency": 16,
     "tokens": {"<raw token or 'anonymous'>": {"allowed": 2, "window_s": 60, "quota": "free",
                                                "retry": null, "mode": "ok", "requested": 60}},
     "default": {...same keys..., for unknown tokens}}
`quota` picks the message variant; `retry` overrides the "Try again in" text ("" for none);
`mode` is ok | no_gpu | queue_timeout | worker_error | illegal_duration | credits | crash |
wrong_size | echo_input | slow | leak.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr
from PIL import Image

DEFAULT_PROMPT = "Ghibli Studio style, Charming hand-drawn anime-style illustration"
QUOTA_TITLE = "ZeroGPU quota exceeded"

# Suffixes spaces 0.51.3 appends for API callers (zero/client.py).
_SUFFIX = {
    "anonymous": "Authenticate with a Hugging Face token for more quota - https://huggingface.co/settings/tokens",
    "free": "Subscribe to Hugging Face PRO to get 40 min of ZeroGPU quota a day - "
    "https://huggingface.co/subscribe/pro?from=ZeroGPU",
    "pro": "Add credits to keep using ZeroGPU. $1 for 10 minutes of ZeroGPU inference - "
    "https://huggingface.co/settings/billing?add-credits=true",
}
_GPU_WORD = {"anonymous": "ZeroGPU", "free": "free ZeroGPU", "pro": "Pro ZeroGPU"}
_LINK = 'style="text-decoration: underline" target="_blank"'


def quota_message(variant: str, requested: int, left: int, wait: str) -> str:
    """The quota texts of the ZeroGPU runtime, current and older, as the client receives them."""
    if variant in _GPU_WORD:  # spaces 0.51.3
        return (
            f"You have exceeded your {_GPU_WORD[variant]} quota ({requested}s requested vs. {left}s left). "
            f"Try again in {wait}. {_SUFFIX[variant]}"
        )
    if variant == "runs_limit":
        return "You have exceeded your ZeroGPU runs limit. "
    if variant == "gpu_limit":
        return (
            "Space app has reached its GPU limit. "
            "Try re-running outside of examples if it happened after clicking one"
        )
    if variant == "html_anonymous":  # spaces 0.34.1: HTML, no retry time
        return (
            f"You have exceeded your GPU quota ({requested}s requested vs. {left}s left). "
            f'<a {_LINK} href="https://huggingface.co/join">Create a free account</a> '
            "to get more daily usage quota."
        )
    if variant == "html_free":
        return (
            f"You have exceeded your free GPU quota ({requested}s requested vs. {left}s left). "
            f'<a {_LINK} href="https://huggingface.co/subscribe/pro">Subscribe to Pro</a> '
            "to get 5x more daily usage quota."
        )
    if variant == "html_pro":
        return (
            f"You have exceeded your Pro GPU quota ({requested}s requested vs. {left}s left). "
            f"Try again in {wait}"
        )
    if variant == "old_retry":
        return (
            f"You have exceeded your GPU quota ({left}s left vs. {requested}s requested). "
            f"Sign-up on Hugging Face to get more quotas or retry in {wait}."
        )
    if variant == "old_days":
        return (
            f"You have exceeded your GPU quota ({left}s left vs {requested}s requested). "
            "Signup on Huggingface or try again in 2 days."
        )
    if variant == "prefixed":  # older gradio_client versions prefixed the server text
        return (
            "The upstream Gradio app has raised an exception: You have exceeded your GPU quota "
            f"({requested}s requested vs. {left}s left). Try again in {wait}"
        )
    raise ValueError(f"unknown quota variant {variant!r}")


class Behaviour:
    """The config file, re-read when it changes, and the per-token call windows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime = -1.0
        self.config: dict[str, Any] = {}
        self._windows: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()
        self.reload()

    def reload(self) -> None:
        mtime = self.path.stat().st_mtime
        if mtime != self._mtime:
            self.config = json.loads(self.path.read_text())
            self._mtime = mtime

    def for_token(self, token: str) -> dict[str, Any]:
        defaults = {"allowed": -1, "window_s": 60.0, "quota": "free", "retry": None, "mode": "ok"}
        spec = self.config.get("tokens", {}).get(token) or self.config.get("default") or {}
        return {**defaults, **spec}

    def admit(self, token: str, spec: dict[str, Any]) -> float | None:
        """None if the call may run, else seconds until the token's window resets."""
        allowed = int(spec["allowed"])
        if allowed < 0:
            return None
        window = float(spec["window_s"])
        now = time.time()
        with self._lock:
            start, used = self._windows.get(token, (now, 0))
            if now - start >= window:
                start, used = now, 0
            if used >= allowed:
                self._windows[token] = (start, used)
                return max(0.0, start + window - now)
            self._windows[token] = (start, used + 1)
            return None


def token_of(request: gr.Request | None) -> str:
    headers = request.headers if request is not None else {}
    value = headers.get("x-hf-authorization") or headers.get("authorization") or ""
    return value.removeprefix("Bearer ").strip() or "anonymous"


def token_label(token: str) -> str:
    return token if token == "anonymous" else hashlib.sha256(token.encode()).hexdigest()[:12]


def build(
    behaviour: Behaviour, *, signature: int = 8, concurrency: int = 16, max_queue: int | None = None
) -> Any:
    """One app; `signature` 8 (today's Space), 6 (the older app) or 0 (no Ghibli endpoint)."""
    record_lock = threading.Lock()

    def record(token: str, start: float, outcome: str) -> None:
        target = behaviour.config.get("record")
        if not target:
            return
        line = json.dumps(
            {"token": token_label(token), "start": start, "end": time.time(), "outcome": outcome}
        )
        with record_lock, open(target, "a") as out:
            out.write(line + "\n")

    def run(
        spatial_img: Image.Image | None,
        height: float,
        width: float,
        request: gr.Request | None,
        progress: gr.Progress,
    ) -> Image.Image:
        behaviour.reload()
        token = token_of(request)
        spec = behaviour.for_token(token)
        start = time.time()
        outcome = "ok"
        try:
            wait_s = behaviour.admit(token, spec)
            if wait_s is not None:
                outcome = "quota"
                requested = int(spec.get("requested", 60))
                retry = spec["retry"]
                text = str(timedelta(seconds=math.ceil(wait_s))) if retry is None else str(retry)
                raise gr.Error(
                    quota_message(spec["quota"], requested, max(0, requested - 48), text),
                    title=QUOTA_TITLE,
                    print_exception=False,
                )
            mode = spec["mode"]
            if mode != "ok":
                outcome = mode
            if mode == "leak":  # an app that repeats the caller's token in its error
                raise gr.Error(f"Invalid credentials {token} for this Space", title="Error")
            _fail_for(mode, spec)
            delay = float(spec.get("delay_s", behaviour.config.get("delay_s", 0.0)))
            steps = 4
            for _ in progress.tqdm(range(steps), desc="denoising"):
                time.sleep(delay / steps)
            if spatial_img is None:
                raise gr.Error("Please upload a photo.", title="Missing image")
            w, h = int(width), int(height)
            if mode == "echo_input":
                return spatial_img
            if mode == "wrong_size":
                w, h = w // 2, h // 2
            out = spatial_img.convert("RGB").resize((w, h)).point(lambda v: 255 - v)
            # Unique bytes per call: Gradio caches identical outputs under one path.
            out.putpixel((0, 0), tuple(random.randrange(256) for _ in range(3)))
            return out
        except Exception:
            if outcome == "ok":
                outcome = "error"
            raise
        finally:
            record(token, start, outcome)

    with gr.Blocks(title="quota test Space") as demo:
        prompt = gr.Textbox(label="Prompt", value=DEFAULT_PROMPT)
        spatial_img = gr.Image(label="Ghibli Image", type="pil")
        height = gr.Slider(minimum=256, maximum=1024, step=64, label="Height", value=768)
        width = gr.Slider(minimum=256, maximum=1024, step=64, label="Width", value=768)
        seed = gr.Number(label="Seed", value=42)
        control_type = gr.Dropdown(choices=["Ghibli"], label="Control Type")
        use_zero_init = gr.Checkbox(label="Use CFG zero star", value=False)
        zero_steps = gr.Number(label="Zero Init Steps", value=1)
        output = gr.Image(label="Generated Image")
        button = gr.Button("Generate Image")
        if signature == 8:

            def single_condition_generate_image(  # the Space's API name and parameter names
                prompt: str,
                spatial_img: Image.Image | None,
                height: float,
                width: float,
                seed: float,
                control_type: str,
                use_zero_init: bool,
                zero_steps: float,
                request: gr.Request,
                progress: gr.Progress = gr.Progress(),  # noqa: B008
            ) -> Image.Image:
                return run(spatial_img, height, width, request, progress)

            inputs = [prompt, spatial_img, height, width, seed, control_type, use_zero_init, zero_steps]
            button.click(single_condition_generate_image, inputs=inputs, outputs=output)
        elif signature == 6:

            def single_condition_generate_image(  # type: ignore[misc] # the older 6-parameter app
                prompt: str,
                spatial_img: Image.Image | None,
                height: float,
                width: float,
                seed: float,
                control_type: str,
                request: gr.Request,
                progress: gr.Progress = gr.Progress(),  # noqa: B008
            ) -> Image.Image:
                return run(spatial_img, height, width, request, progress)

            inputs = [prompt, spatial_img, height, width, seed, control_type]
            button.click(single_condition_generate_image, inputs=inputs, outputs=output)
        else:

            def generate(prompt: str, spatial_img: Image.Image | None) -> Image.Image | None:
                return spatial_img  # some other app: no Ghibli endpoint at all

            button.click(generate, inputs=[prompt, spatial_img], outputs=output)
    demo.queue(default_concurrency_limit=concurrency, max_size=max_queue)
    return demo


def _fail_for(mode: str, spec: dict[str, Any]) -> None:
    if mode == "no_gpu":
        raise gr.Error(
            "No GPU was available after 60s. "
            "Try re-running outside of examples if it happened after clicking one",
            title="ZeroGPU queue timeout",
        )
    if mode == "client_no_gpu":
        raise gr.Error("No GPU was available", title="ZeroGPU client error")
    if mode == "worker_error":
        raise gr.Error("RuntimeError", title="ZeroGPU worker error")
    if mode == "aborted":
        raise gr.Error("GPU task aborted", title="ZeroGPU worker error")
    if mode == "illegal_duration":
        raise gr.Error(
            "The requested GPU duration (900s) is larger than the maximum allowed",
            title="ZeroGPU illegal duration",
        )
    if mode == "credits":
        raise gr.Error(
            "You have too many ZeroGPU credits allocated to running tasks. "
            "Try again once some of those tasks have completed.",
            title="ZeroGPU pending credits exceeded",
        )
    if mode == "crash":
        raise RuntimeError("the model crashed")
    if mode == "slow":
        time.sleep(float(spec.get("sleep_s", 30)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args()
    import uvicorn
    from fastapi import FastAPI

    behaviour = Behaviour(args.config)
    app = FastAPI()
    # Variants under their own paths, so one process serves every test: Client(url + "v6/") etc.
    variants = {
        "/v6": build(behaviour, signature=6),
        "/other": build(behaviour, signature=0),
        "/tiny": build(behaviour, concurrency=1, max_queue=1),
        "": build(behaviour, concurrency=int(behaviour.config.get("concurrency", 16))),
    }
    for path, blocks in variants.items():
        app = gr.mount_gradio_app(app, blocks, path=path or "/", show_error=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
