"""Logs of a real process whose stderr is not a terminal: one JSON object per line, job context
on every line of a job, library records in the same format, and no token or image bytes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.procs import ROOT

pytestmark = pytest.mark.system  # starts processes beyond redis-server (docs/tests.md)

_PROGRAM = """
import logging
import structlog
from jobs.logs import configure_logging, get_logger

configure_logging("info", "auto")
log = get_logger("consumers.worker")
with structlog.contextvars.bound_contextvars(job_id="j1", attempt=2, consumer="c-1", token="hf-1a2b3c4d"):
    log.info("job started", phase="running")
    log.warning("space call failed", detail="401 for token hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789")
    log.info("result stored", data=b"\\x89PNG\\r\\n" + bytes(5000))
    log.info(
        "nested",
        request={"headers": {"authorization": "Bearer n3st3d-s3cr3t-456"}, "body": b"x" * 10},
        tokens=["hf_NestedTokenAbCdEfGh12345", ("whsec_" + "A" * 24,)],
        error=ValueError("bad token hf_InAnExceptionAbCdEf123"),
    )
lib = logging.getLogger("httpx")
lib.warning("HTTP Request: POST http://space/ %s", "Authorization: Bearer s3cr3t-v4lue-123")
lib.info("chatty library line, below WARNING: dropped")
"""


def test_every_line_is_json_with_context_and_without_secrets() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [line["event"] for line in lines] == [
        "job started",
        "space call failed",
        "result stored",
        "nested",
        "HTTP Request: POST http://space/ Authorization: [redacted]",
    ]
    for line in lines[:3]:
        assert (line["job_id"], line["attempt"], line["consumer"], line["token"]) == (
            "j1",
            2,
            "c-1",
            "hf-1a2b3c4d",
        )
        assert line["level"] in ("info", "warning")
        assert line["timestamp"].endswith("Z")
    assert lines[0]["phase"] == "running"
    assert lines[1]["detail"] == "401 for token [redacted]"
    assert lines[2]["data"] == "<5006 bytes>"
    nested = lines[3]
    assert nested["request"] == {"headers": {"authorization": "[redacted]"}, "body": "<10 bytes>"}
    assert nested["tokens"] == ["[redacted]", ["[redacted]"]]
    assert "[redacted]" in nested["error"]
    for secret in ("n3st3d", "NestedToken", "whsec_AAAA", "InAnException"):
        assert secret not in done.stderr, secret
    assert lines[4]["logger"] == "httpx"
    assert "hf_AbCd" not in done.stderr
    assert "s3cr3t" not in done.stderr
