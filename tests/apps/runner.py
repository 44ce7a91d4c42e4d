"""Start tests/apps/quota_space.py as a real subprocess on a free port, and steer it."""

from __future__ import annotations

import json
import os
import secrets
import string
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.procs import Proc, base_env, free_port, wait_until


def new_token() -> str:
    """A well-formed, random, never-real HF token (hf_ + 34 letters and digits)."""
    alphabet = string.ascii_letters + string.digits
    return "hf_" + "".join(secrets.choice(alphabet) for _ in range(34))


@dataclass
class QuotaSpace:
    """The quota test Space: per-token behaviour in a JSON file it re-reads, calls in a record."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: Proc | None = None
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def config_path(self) -> Path:
        return self.workdir / "quota_space.json"

    @property
    def record_path(self) -> Path:
        return self.workdir / "calls.jsonl"

    def start(self, **config: Any) -> QuotaSpace:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.configure(**{"delay_s": 0.2, "tokens": {}, **config})
        self.proc = Proc(
            [
                sys.executable,
                "-m",
                "tests.apps.quota_space",
                "--port",
                str(self.port),
                "--config",
                str(self.config_path),
            ],
            base_env(),
            self.workdir / "quota_space.log",
        ).start()
        try:
            wait_until(
                lambda: httpx.get(self.url + "config", timeout=2).status_code == 200,
                "quota Space",
                240,  # importing gradio takes long on a busy 2-core machine
                self.proc.proc,
            )
        except (TimeoutError, RuntimeError):
            self.stop()
            raise RuntimeError(f"quota Space did not start:\n{self.proc.log()[-3000:]}") from None
        return self

    def configure(self, **config: Any) -> None:
        """Replace config keys; written atomically, so the app never reads half a file."""
        self.config.update(config)
        self.config["record"] = str(self.record_path)
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.config))
        os.replace(tmp, self.config_path)

    def set_token(self, token: str, **behaviour: Any) -> None:
        tokens = dict(self.config.get("tokens", {}))
        tokens[token] = behaviour
        self.configure(tokens=tokens)

    def calls(self) -> list[dict[str, Any]]:
        if not self.record_path.exists():
            return []
        return [json.loads(line) for line in self.record_path.read_text().splitlines() if line.strip()]

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
