"""A Gradio app with the Space's exact endpoint whose answers the consumer tests script by prompt.

- a prompt containing "fail" raises a plain app error (the consumer classes it transient) until
  the heal file exists;
- "reject" raises a validation error (permanent: the job fails at once);
- "quota" raises the ZeroGPU quota error ("Try again in 0:00:02") until the heal file exists;
- "slow" takes --slow seconds instead of --delay; "first-slow:N" makes the first call with this
  prompt take N seconds and later ones --delay;
- "bomb:NAME" answers with the file NAME of --bomb-dir as it is (a hostile picture a test made);
- anything else answers after --delay seconds with a new picture of the requested size.
Every call appends {"seed", "prompt", "start", "end", "outcome"} to --call-log (JSON lines), so a
test counts the Space calls really made.

Run: python -m tests.apps.scripted_space --port PORT --call-log FILE --heal-file FILE
"""

from __future__ import annotations

import argparse
import json
import os
import re
import threading
import time
import zlib
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr
from PIL import Image, ImageOps

DEFAULT_PROMPT = "Ghibli Studio style, Charming hand-drawn anime-style illustration"
QUOTA_MESSAGE = "You have exceeded your free ZeroGPU quota (60s requested vs. 0s left). Try again in 0:00:02"


def build(
    delay_s: float, slow_s: float, call_log: Path, heal_file: Path, bomb_dir: Path | None = None
) -> gr.Blocks:
    lock = threading.Lock()
    seen: set[str] = set()

    def record(seed: float, prompt: str, start: float, outcome: str) -> None:
        line = json.dumps(
            {"seed": int(seed), "prompt": prompt, "start": start, "end": time.time(), "outcome": outcome}
        )
        with lock, call_log.open("a") as out:
            out.write(line + "\n")

    def single_condition_generate_image(
        prompt: str,
        spatial_img: Image.Image | None,
        height: float,
        width: float,
        seed: float,
        control_type: str,
        use_zero_init: bool,
        zero_steps: float,
    ) -> Image.Image | str:
        start = time.time()
        healed = heal_file.exists()
        bomb = re.search(r"bomb:([\w.-]+)", prompt)
        if bomb and bomb_dir is not None:
            record(seed, prompt, start, "bomb")
            return str(bomb_dir / bomb.group(1))  # a path: Gradio serves the file as it is
        if "reject" in prompt:
            record(seed, prompt, start, "rejected")
            raise gr.Error("Scripted rejection: value 2048 is greater than maximum value 1024.")
        if "fail" in prompt and not healed:
            record(seed, prompt, start, "failed")
            raise gr.Error("Scripted failure: the GPU worker crashed.")
        if "quota" in prompt and not healed:
            record(seed, prompt, start, "quota")
            raise gr.Error(QUOTA_MESSAGE, title="ZeroGPU quota exceeded")
        with lock:
            first = prompt not in seen
            seen.add(prompt)
        first_slow = re.search(r"first-slow:(\d+)", prompt)
        if first_slow:
            time.sleep(float(first_slow.group(1)) if first else delay_s)
        else:
            time.sleep(slow_s if "slow" in prompt else delay_s)
        assert spatial_img is not None
        out = ImageOps.invert(spatial_img.convert("RGB").resize((int(width), int(height))))
        # Every job's picture differs (seed and prompt in the first pixels): identical outputs would
        # share one download path in gradio_client.
        tag = zlib.crc32(f"{int(seed)} {prompt}".encode())
        for x in range(4):
            out.putpixel((x, 0), (tag >> (8 * x) & 255, x * 60, 255 - x * 60))
        record(seed, prompt, start, "ok")
        return out

    with gr.Blocks(title="Scripted Space") as demo:
        prompt = gr.Textbox(label="Prompt", value=DEFAULT_PROMPT)
        spatial_img = gr.Image(label="Ghibli Image", type="pil")
        height = gr.Slider(minimum=256, maximum=1024, step=64, label="Height", value=768)
        width = gr.Slider(minimum=256, maximum=1024, step=64, label="Width", value=768)
        seed = gr.Number(label="Seed", value=42)
        control_type = gr.Dropdown(choices=["Ghibli"], label="Control Type")
        use_zero_init = gr.Checkbox(label="Use CFG zero star", value=False)
        zero_steps = gr.Number(label="Zero Init Steps", value=1)
        output = gr.Image(label="Generated Image")
        gr.Button("Generate Image").click(
            single_condition_generate_image,
            inputs=[prompt, spatial_img, height, width, seed, control_type, use_zero_init, zero_steps],
            outputs=output,
            api_name="single_condition_generate_image",
        )
    demo.queue(default_concurrency_limit=16)
    return demo


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--slow", type=float, default=5.0)
    parser.add_argument("--call-log", type=Path, required=True)
    parser.add_argument("--heal-file", type=Path, required=True)
    parser.add_argument("--bomb-dir", type=Path, default=None)
    args = parser.parse_args()
    build(args.delay, args.slow, args.call_log, args.heal_file, args.bomb_dir).launch(
        server_name="127.0.0.1", server_port=args.port, show_error=True, quiet=True
    )


if __name__ == "__main__":
    main()
