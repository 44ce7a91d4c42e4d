"""`ghibli submit` against an ingest that requires API keys: refused without one, accepted with
GHIBLI_API_KEY, and the key never shows in what the command prints."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from ghibli.cli import cli
from tests.photos import landscape
from tests.procs import ROOT, RedisServer, base_env, free_port, ghibli, wait_until

pytestmark = pytest.mark.system  # starts processes beyond redis-server (docs/tests.md)


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ghibli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_submit_sends_the_api_key_from_the_environment(redis_server: RedisServer, tmp_path: Path) -> None:
    created = CliRunner().invoke(cli, ["keys", "create", "--id", "cli"])
    key = re.search(r"^\s+(gk_\S+)$", created.output, re.MULTILINE)
    entry = re.search(r"^\s+(id=cli,\S+)$", created.output, re.MULTILINE)
    assert key
    assert entry
    port = free_port()
    env = base_env(REDIS_URL=redis_server.url, GHIBLI_PORT=str(port), GHIBLI_API_KEYS=entry.group(1))
    ingest = ghibli(["ingest"], env, tmp_path / "ingest.log").start()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(url + "/readyz").status_code == 200, "ingest", 120, ingest.proc)
        photo = tmp_path / "p.jpg"
        landscape(320, 240).save(photo)
        client_env = base_env()

        refused = _run(client_env, "submit", str(photo), "--detach", "--server", url)
        assert refused.returncode == 1
        assert "api_key_required" in refused.stderr

        accepted = _run(
            {**client_env, "GHIBLI_API_KEY": key.group(1)}, "submit", str(photo), "--detach", "--server", url
        )
        assert accepted.returncode == 0, accepted.stderr
        job_id = accepted.stdout.split()[0]
        assert re.fullmatch(r"[0-9a-f]{32}", job_id)
        assert key.group(1) not in accepted.stdout + accepted.stderr
        status = _run({**client_env, "GHIBLI_API_KEY": key.group(1)}, "status", job_id, "--server", url)
        assert status.returncode == 0, status.stderr
        assert "queued" in status.stdout + status.stderr
    finally:
        ingest.stop()
