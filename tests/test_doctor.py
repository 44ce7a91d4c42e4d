"""`ghibli doctor` against real set-ups: real redis-server processes, a real consumer, the offline Space."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from ghibli.cli import cli
from ghibli.probes import container_role
from tests.procs import ROOT, Proc, RedisServer, base_env, free_port, ghibli, wait_until

GOOD_TOKEN = "hf_" + "a1B2" * 9


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def doctor(env: dict[str, str], *args: str) -> Ran:
    """The real command, run in this process (an interpreter start per run would dominate the test).

    `env` is the whole environment, as for a subprocess: variables missing from it are unset.
    """
    changes: dict[str, str | None] = {name: None for name in os.environ if name not in env}
    changes.update(env)
    result = CliRunner().invoke(cli, ["doctor", *args], env=changes, catch_exceptions=False)
    return Ran(result.exit_code, result.stdout, result.stderr)


def doctor_process(env: dict[str, str], *args: str) -> Ran:
    """`python -m ghibli doctor`, as an operator (or a HEALTHCHECK) runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "ghibli", "doctor", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


def findings(env: dict[str, str], *args: str) -> tuple[int, list[dict[str, str]]]:
    done = doctor(env, "--json", *args)
    assert done.stdout.strip(), done.stderr
    return done.returncode, json.loads(done.stdout)


def levels(found: list[dict[str, str]], topic: str) -> list[str]:
    return [f["level"] for f in found if f["topic"] == topic]


def good_redis(tmp_path: Path, *extra: str) -> RedisServer:
    """Configured as the compose file configures it: AOF, a memory limit, noeviction."""
    return RedisServer(tmp_path / "redis", appendonly=True, extra=("--maxmemory", "256mb", *extra)).start()


def start_consumer(env: dict[str, str], log_dir: Path, procs: list[Proc]) -> Proc:
    consumer = ghibli(["consume"], env, log_dir / "consumer.log").start()
    procs.append(consumer)
    # The consumer creates the stream and group, then holds its liveness key.
    wait_until(
        lambda: doctor(env, "--probe", "consumer", "--timeout", "5").returncode == 0,
        "consumer alive",
        90,
        consumer.proc,
    )
    return consumer


@pytest.mark.system
def test_good_setup_passes_every_check(tmp_path: Path, space_url: str, procs: list[Proc]) -> None:
    redis = good_redis(tmp_path)
    try:
        tokens = tmp_path / "hf_tokens"
        tokens.write_text(f"# the team's tokens\n{GOOD_TOKEN}\n")
        env = base_env(REDIS_URL=redis.url, GHIBLI_SPACE=space_url, HUGGING_FACE_TOKENS_FILE=str(tokens))
        start_consumer(env, tmp_path, procs)

        done = doctor_process(env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "FAIL" not in done.stdout
        assert "All checks passed." in done.stdout or "warning(s)" in done.stdout
        # The secret never shows; its alias does.
        assert GOOD_TOKEN not in done.stdout + done.stderr
        from consumers.tokens import alias_of

        assert alias_of(GOOD_TOKEN) in done.stdout

        code, found = findings(env)
        assert code == 0
        assert levels(found, "redis.memory") == ["ok"]
        assert levels(found, "redis.persistence") == ["ok"]
        assert "ok" in levels(found, "queue")
        assert any("1 consumer(s) alive" in f["message"] for f in found), found
        space = next(f for f in found if f["topic"] == "space")
        assert space["level"] == "ok"
        assert "/single_condition_generate_image(prompt, spatial_img, height, width, seed" in space["message"]
    finally:
        redis.stop()


@pytest.mark.system
def test_allkeys_eviction_and_no_aof_are_flagged(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis", extra=("--maxmemory-policy", "allkeys-lru")).start()
    try:
        env = base_env(REDIS_URL=redis.url)
        code, found = findings(env, "--check", "redis")
        assert code == 1
        memory = [f for f in found if f["topic"] == "redis.memory"]
        assert memory[0]["level"] == "fail"
        assert "allkeys-lru" in memory[0]["message"]
        assert "noeviction" in memory[0]["fix"]
        persistence = [f for f in found if f["topic"] == "redis.persistence"]
        assert [f["level"] for f in persistence] == ["fail"]
        assert "appendonly yes" in persistence[0]["fix"]
        # No memory limit at all is a warning of its own.
        assert any(f["level"] == "warn" and "maxmemory is 0" in f["message"] for f in memory)

        # The text report says the same, with what to do.
        done = doctor_process(env, "--check", "redis")
        assert done.returncode == 1
        assert "FAIL  redis.memory" in done.stdout
        assert "fix: Set `maxmemory-policy noeviction`" in done.stdout
    finally:
        redis.stop()


def test_volatile_eviction_is_flagged_too(tmp_path: Path) -> None:
    redis = good_redis(tmp_path, "--maxmemory-policy", "volatile-ttl")
    try:
        code, found = findings(base_env(REDIS_URL=redis.url), "--check", "redis")
        assert code == 1
        assert levels(found, "redis.memory") == ["fail"]
        assert levels(found, "redis.persistence") == ["ok"]
    finally:
        redis.stop()


@pytest.mark.system
def test_missing_stream_and_group_and_no_consumers(tmp_path: Path) -> None:
    redis = good_redis(tmp_path)
    try:
        env = base_env(REDIS_URL=redis.url)
        code, found = findings(env, "--check", "queue")
        assert code == 1
        assert found[0]["level"] == "fail"
        assert "does not exist" in found[0]["message"]
        assert "ghibli consume" in found[0]["fix"]

        # A stream without our group: someone else's, or a different GHIBLI_GROUP.
        cli_ = ["redis-cli", "-p", str(redis.port)]
        subprocess.run([*cli_, "XGROUP", "CREATE", "{ghibli}:jobs", "others", "$", "MKSTREAM"], check=True)
        code, found = findings(env, "--check", "queue")
        assert code == 1
        assert "no consumer group 'workers'" in found[0]["message"]
        assert "others" in found[0]["message"]

        subprocess.run([*cli_, "XGROUP", "CREATE", "{ghibli}:jobs", "workers", "$"], check=True)
        code, found = findings(env, "--check", "queue")
        assert code == 0  # group present; nobody alive is a warning
        assert levels(found, "queue") == ["ok", "warn"]
        assert "no consumer is alive" in found[1]["message"]
        assert doctor(env, "--check", "queue", "--strict").returncode == 1
        assert doctor(env, "--probe", "consumer", "--timeout", "5").returncode == 1
    finally:
        redis.stop()


def test_missing_space_is_reported(tmp_path: Path) -> None:
    env = base_env(GHIBLI_SPACE=f"http://127.0.0.1:{free_port()}/")
    code, found = findings(env, "--check", "space", "--timeout", "30")
    assert code == 1
    assert found[0]["topic"] == "space"
    assert found[0]["level"] == "fail"
    assert "ghibli space" in found[0]["fix"]


def test_unreachable_redis_and_wrong_password(tmp_path: Path) -> None:
    env = base_env(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    code, found = findings(env, "--check", "redis", "--timeout", "10")
    assert code == 1
    assert found[0]["level"] == "fail"
    assert "cannot talk to Redis" in found[0]["message"]

    redis = good_redis(tmp_path, "--requirepass", "right-password")
    try:
        secret = tmp_path / "redis_password"
        secret.write_text("right-password\n")
        env = base_env(REDIS_URL=redis.url, REDIS_PASSWORD_FILE=str(secret))
        code, found = findings(env, "--check", "redis")
        assert code == 0, found
        assert levels(found, "redis.memory") == ["ok"]

        secret.write_text("wrong-password\n")
        done = doctor(env, "--check", "redis")
        assert done.returncode == 1
        assert "REDIS_PASSWORD_FILE" in done.stdout
        assert "wrong-password" not in done.stdout + done.stderr
    finally:
        redis.stop()


def test_bad_settings_and_bad_tokens_are_findings_not_tracebacks(tmp_path: Path) -> None:
    done = doctor(base_env(GHIBLI_KEY_PREFIX="no-hash-tag:"), "--check", "settings")
    assert done.returncode == 1
    assert "FAIL  settings" in done.stdout
    assert "GHIBLI_KEY_PREFIX" in done.stdout
    assert "Traceback" not in done.stderr

    bad = "Bearer hf_" + "x" * 30
    code, found = findings(base_env(HUGGING_FACE_TOKENS=bad), "--check", "tokens")
    assert code == 1
    assert found[0]["level"] == "fail"
    assert "Bearer" in found[0]["message"]
    assert bad not in json.dumps(found)

    # No token for the HF Space: allowed, but the anonymous quota is tiny.
    code, found = findings(base_env(), "--check", "tokens")
    assert code == 0
    assert found[0]["level"] == "warn"
    assert "HUGGING_FACE_TOKENS_FILE" in found[0]["fix"]


@pytest.mark.parametrize(
    ("cmdline", "role"),
    [
        (b"/usr/bin/tini\0--\0ghibli\0consume\0", "consumer"),
        (b"ghibli\0ingest\0--port\x008000\0", "ingest"),
        (b"/opt/ghibli/bin/python\0-m\0ghibli\0space\0", "space"),
        (b"/usr/bin/tini\0--\0ghibli\0metrics-exporter\0", "exporter"),
        (b"redis-server\0*:6379\0", None),
    ],
)
def test_container_role_from_the_main_command(tmp_path: Path, cmdline: bytes, role: str | None) -> None:
    path = tmp_path / "cmdline"
    path.write_bytes(cmdline)
    assert container_role(path) == role


def test_the_first_line_names_what_is_checked_and_where_it_came_from(tmp_path: Path) -> None:
    """No stack of `ghibli up` here: options and variables, else the defaults, each named."""

    def env_here(**env: str) -> dict[str, str]:  # never a stack someone runs in this checkout
        return base_env(GHIBLI_UP_DATA_DIR=str(tmp_path), **env)

    space = "http://127.0.0.1:9/"
    done = doctor(env_here(REDIS_URL="redis://127.0.0.1:1/0", GHIBLI_SPACE=space), "--check", "settings")
    assert done.stdout.splitlines()[0] == (
        f"doctor: redis redis://127.0.0.1:1/0 (from REDIS_URL), space {space} (from GHIBLI_SPACE)"
    )
    done = doctor(env_here(), "--check", "settings", "--redis-url", "redis://:hunter2hunter2@127.0.0.1:1/0")
    assert done.stdout.splitlines()[0] == (
        "doctor: redis redis://:***@127.0.0.1:1/0 (from --redis-url), "
        "space jamesliu1217/EasyControl_Ghibli (default)"
    )
    assert "hunter2" not in done.stdout + done.stderr
    # With --json the line goes to stderr: stdout stays one JSON document.
    done = doctor(env_here(), "--check", "settings", "--json")
    assert json.loads(done.stdout)[0]["topic"] == "settings"
    assert done.stderr.startswith("doctor: redis redis://127.0.0.1:6379/0 (default)")
