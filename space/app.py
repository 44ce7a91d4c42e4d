"""The offline Space: a Gradio app with the exact API of jamesliu1217/EasyControl_Ghibli.

Same endpoint name, parameter names, component types, ranges and defaults, so gradio_client cannot
tell it from the real Space. Gradio is imported only here: ingest and consumers never load it.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr
from PIL import Image

from space.stylizer import fast_transform, stylize

__all__ = ["SpaceOptions", "build_app", "serve"]

DEFAULT_PROMPT = "Ghibli Studio style, Charming hand-drawn anime-style illustration"
PROGRESS_STEPS = ("reading photo", "painting", "finishing")


@dataclass(frozen=True, slots=True)
class SpaceOptions:
    engine: str = "ghibli"  # "ghibli" or "fast"
    delay_s: float = 0.0
    jitter_s: float = 0.0
    concurrency: int = 4


def build_app(options: SpaceOptions) -> Any:
    def single_condition_generate_image(  # the name is the API name, as on the Space
        prompt: str,
        spatial_img: Image.Image | None,
        height: float,
        width: float,
        seed: float,
        control_type: str,
        use_zero_init: bool,
        zero_steps: float,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's injection idiom
    ) -> Image.Image:
        if spatial_img is None:
            raise gr.Error("Please upload a photo.", title="Missing image")
        if control_type != "Ghibli":
            raise gr.Error(f"Unknown control type {control_type!r}.", title="Invalid control type")
        w, h = int(width), int(height)
        progress(0.0, desc=PROGRESS_STEPS[0])
        wait = options.delay_s + random.uniform(0, options.jitter_s)  # noqa: S311 - not crypto
        if wait > 0:
            steps = max(1, int(wait / 0.25))
            for _ in progress.tqdm(range(steps), desc=PROGRESS_STEPS[1]):
                time.sleep(wait / steps)
        else:
            progress(0.5, desc=PROGRESS_STEPS[1])
        if options.engine == "fast":
            out = fast_transform(spatial_img, w, h, int(seed))
        else:
            out = stylize(spatial_img, w, h, int(seed), prompt or "")
        progress(1.0, desc=PROGRESS_STEPS[2])
        return out

    with gr.Blocks(title="EasyControl Ghibli (offline)") as demo:
        gr.Markdown("# Ghibli-style pictures, offline engine")
        with gr.Row():
            with gr.Column():
                prompt = gr.Textbox(label="Prompt", value=DEFAULT_PROMPT)
                spatial_img = gr.Image(label="Ghibli Image", type="pil")
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
    demo.queue(default_concurrency_limit=options.concurrency)
    return demo


def serve(host: str, port: int, options: SpaceOptions) -> None:
    build_app(options).launch(
        server_name=host, server_port=port, show_error=True, quiet=True, prevent_thread_lock=False
    )
