"""The offline Space: a Gradio app with the exact API of jamesliu1217/EasyControl_Ghibli.

Same endpoint name, parameter names, component types, ranges and defaults, so gradio_client cannot
tell it from the real Space. Gradio is imported only here: ingest and consumers never load it.
Options for demos, tests and benchmarks: a delay, a cheap engine, faults with the real Space's
messages, and a call log (space/call_log.py).
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr
from PIL import Image, UnidentifiedImageError
from starlette.middleware import Middleware

from space.call_log import CallLog, CallRecord, file_sha256, token_alias
from space.faults import FaultPlan, refusal
from space.outputs import OutputDir
from space.queue_fault import QueueFullFault
from space.stylizer import STEPS, fast_transform, stylize
from space.title import offline_demo_title

__all__ = ["DEFAULT_PROMPT", "PARAMETERS", "SpaceOptions", "build_app", "launch", "serve"]

DEFAULT_PROMPT = "Ghibli Studio style, Charming hand-drawn anime-style illustration"
PARAMETERS = (
    "prompt",
    "spatial_img",
    "height",
    "width",
    "seed",
    "control_type",
    "use_zero_init",
    "zero_steps",
)
WAIT_STEP = "denoising"  # what the --delay is reported as, like a diffusion model's steps


@dataclass(frozen=True, slots=True)
class SpaceOptions:
    engine: str = "ghibli"  # "ghibli" or "fast"
    delay_s: float = 0.0
    jitter_s: float = 0.0
    concurrency: int = 4
    max_queue: int | None = None  # Gradio's queue max_size: more waiting calls get 503
    faults: FaultPlan = field(default_factory=FaultPlan)
    call_log: Path | None = None


class _Failed(Exception):
    """A gr.Error with the outcome to log (its kind)."""

    def __init__(self, outcome: str, error: gr.Error) -> None:
        super().__init__(outcome)
        self.outcome = outcome
        self.error = error


class _Endpoint:
    """The call behind the API: faults, delay, painting, the output file and the call log."""

    def __init__(self, options: SpaceOptions, log: CallLog) -> None:
        self.options = options
        self.log = log
        self.outputs = OutputDir()
        self.plan = options.faults
        # queue_full refuses at the queue's door (middleware); the other kinds fail in the call.
        self.in_call_faults = self.plan.active and self.plan.kind != "queue_full"

    def generate(
        self,
        prompt: str,
        path: str | None,
        size: tuple[int, int],
        seed: int,
        control_type: str,
        request: Any,
        progress: Any,
    ) -> str:
        """Answer one call (a file path) or raise gr.Error; log it either way."""
        call, start = self.log.next_call(), time.time()
        alias = token_alias(request.headers if request is not None else {})
        outcome, message = "ok", None
        try:
            return self._run(prompt, path, size, seed, control_type, alias, progress)
        except _Failed as failed:
            outcome, message = failed.outcome, failed.error.message
            raise failed.error from None
        except Exception as exc:
            outcome, message = "error", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            record = CallRecord(
                call=call,
                start=start,
                end=time.time(),
                outcome=outcome,
                seed=seed,
                width=size[0],
                height=size[1],
                input_sha256=file_sha256(path),
                token=alias,
                session=request.session_hash if request is not None else None,
                engine=self.options.engine,
                error=message,
            )
            self.log.write(record)

    def _run(
        self,
        prompt: str,
        path: str | None,
        size: tuple[int, int],
        seed: int,
        control_type: str,
        alias: str,
        progress: Any,
    ) -> str:
        if path is None:
            raise _Failed("error", gr.Error("Please upload a photo.", title="Missing image"))
        if control_type != "Ghibli":
            message = f"Unknown control type {control_type!r}."
            raise _Failed("error", gr.Error(message, title="Invalid control type"))
        failing = self.in_call_faults and self.plan.should_fail(seed)
        if failing and self.plan.kind in ("quota", "quota_html"):
            raise self._fault(alias)  # ZeroGPU refuses before any GPU time is spent
        self._wait(progress)
        if failing:
            raise self._fault(alias)  # no_gpu and worker_error come after the wait
        try:
            with Image.open(path) as image:
                image.load()
                picture = self._paint(image, size, seed, prompt or "", progress)
        except (UnidentifiedImageError, OSError) as exc:
            raise _Failed("error", gr.Error(f"Cannot read the image: {exc}", title="Invalid image")) from None
        return self.outputs.write(picture)

    def _fault(self, alias: str) -> _Failed:
        answer = refusal(
            self.plan.kind, anonymous=alias == "anonymous", retry_after_s=self.plan.retry_after_s
        )
        return _Failed(answer.kind, gr.Error(answer.message, title=answer.title, print_exception=False))

    def _wait(self, progress: Any) -> None:
        seconds = self.options.delay_s + random.uniform(0, self.options.jitter_s)  # noqa: S311 - not crypto
        if seconds > 0:
            steps = max(1, int(seconds / 0.25))
            for _ in progress.tqdm(range(steps), desc=WAIT_STEP, unit="steps"):
                time.sleep(seconds / steps)

    def _paint(self, image: Image.Image, size: tuple[int, int], seed: int, prompt: str, progress: Any) -> Any:
        if self.options.engine == "fast":
            progress((len(STEPS) - 1, len(STEPS)), desc=STEPS[-1], unit="steps")
            return fast_transform(image, size[0], size[1], seed)

        def on_step(name: str) -> None:
            progress((STEPS.index(name), len(STEPS)), desc=name, unit="steps")

        return stylize(image, size[0], size[1], seed, prompt, on_step=on_step)


def build_app(options: SpaceOptions) -> tuple[Any, list[Middleware]]:
    """The Gradio Blocks and the ASGI middleware `launch` must install (the queue_full fault)."""
    log = CallLog(options.call_log)
    endpoint = _Endpoint(options, log)

    def single_condition_generate_image(  # the name is the API name, as on the Space
        prompt: str,
        spatial_img: str | None,
        height: float,
        width: float,
        seed: float,
        control_type: str,
        use_zero_init: bool,
        zero_steps: float,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's injection idiom
    ) -> str:
        size = (int(width), int(height))
        return endpoint.generate(prompt, spatial_img, size, int(seed), control_type, request, progress)

    # Gradio's cache keeps every output; clear files older than 30 min every 10 min. The title tells
    # ingest (and so the page) that this is the demo engine, not the model (jobs/engine.py).
    title = offline_demo_title(options.engine)
    with gr.Blocks(title=title, delete_cache=(600, 1800)) as demo:
        gr.Markdown("# Ghibli-style pictures, offline engine")
        with gr.Row():
            with gr.Column():
                prompt = gr.Textbox(label="Prompt", value=DEFAULT_PROMPT)
                # filepath + image_mode None: the uploaded bytes as sent (hashed for the call log);
                # the API shows the same `filepath` type as the Space's type="pil" component.
                spatial_img = gr.Image(label="Ghibli Image", type="filepath", image_mode=None)
                height = gr.Slider(minimum=256, maximum=1024, step=64, label="Height", value=768)
                width = gr.Slider(minimum=256, maximum=1024, step=64, label="Width", value=768)
                seed = gr.Number(label="Seed", value=42)
                control_type = gr.Dropdown(choices=["Ghibli"], label="Control Type")
                use_zero_init = gr.Checkbox(label="Use CFG zero star", value=False)
                zero_steps = gr.Number(label="Zero Init Steps", value=1)
                button = gr.Button("Generate Image")
            with gr.Column():
                output = gr.Image(label="Generated Image")
        button.click(
            single_condition_generate_image,
            inputs=[prompt, spatial_img, height, width, seed, control_type, use_zero_init, zero_steps],
            outputs=output,
            api_name="single_condition_generate_image",
        )
    demo.queue(default_concurrency_limit=options.concurrency, max_size=options.max_queue)
    middleware = []
    if options.faults.active and options.faults.kind == "queue_full":
        middleware.append(Middleware(QueueFullFault, plan=options.faults, log=log, engine=options.engine))
    return demo, middleware


def launch(options: SpaceOptions, host: str, port: int, *, block: bool = True) -> Any:
    """Start the app on host:port; with block=False return the running Blocks (`.close()` stops it)."""
    demo, middleware = build_app(options)
    demo.launch(
        server_name=host,
        server_port=port,
        show_error=True,
        quiet=True,
        # The endpoint is sync: Gradio runs it on a thread limiter of 40 by default, which would
        # silently cap --concurrency above that (and leave no thread for uploads meanwhile).
        max_threads=max(40, options.concurrency + 16),
        prevent_thread_lock=not block,
        app_kwargs={"middleware": middleware},
    )
    return demo


def serve(host: str, port: int, options: SpaceOptions) -> None:
    launch(options, host, port, block=True)
