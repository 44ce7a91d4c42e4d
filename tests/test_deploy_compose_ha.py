"""docker-compose.ha.yml: a valid override of docker-compose.yml, and its Redis topology really
works: one primary, two replicas and three sentinels run from the services' own commands (with
the real redis-server binary, as tests/test_deploy_compose.py does for the main file), the doctor
finds them through the REDIS_URL the ghibli services get, and a forced fail-over leaves a primary
with both replicas again (the demoted primary rejoins as a replica: every node has masterauth).

No Docker engine: Debian's docker-compose (v1) validates and resolves the two files; the commands
run on loopback with the service names and ports rewritten, nothing else.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import redis as redis_sync
import yaml

from jobs.redis_url import parse_redis_url
from jobs.settings import load_settings
from tests.procs import ROOT, base_env, free_port, port_open, redis_binary, wait_until

pytestmark = pytest.mark.system  # starts processes beyond redis-server (docs/tests.md)

FILES = ("docker-compose.yml", "docker-compose.ha.yml")
GHIBLI = ("ingest", "consumer", "webhooks", "metrics-exporter")
NODES = ("redis", "redis-replica-1", "redis-replica-2")
SENTINELS = ("sentinel-1", "sentinel-2", "sentinel-3")


def compose_config(tmp: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is not installed (scripts/test installs Debian's package)"
    tmp.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copy(ROOT / name, tmp / name)
    shutil.copy(ROOT / ".env.example", tmp / ".env")
    clean = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL")}
    files = [arg for name in FILES for arg in ("-f", str(tmp / name))]
    return subprocess.run(
        [binary, "--project-directory", str(tmp), *files, "config"],
        env={**clean, "GRAFANA_ADMIN_PASSWORD": "test-only"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@cache
def resolved() -> dict[str, Any]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        done = compose_config(Path(tmp))
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def script_of(service: dict[str, Any]) -> str:
    command = service["command"]
    assert command[:2] == ["sh", "-c"], command
    return str(command[2]).replace("$$", "$")  # compose's escape, as the container's shell sees it


def test_the_override_validates_and_adds_the_topology() -> None:
    services = resolved()["services"]
    assert set(NODES) | set(SENTINELS) <= set(services)
    for name in (*NODES, *SENTINELS):
        assert list(services[name]["networks"]) == ["backend"], name  # private, like the main Redis
        assert "ports" not in services[name], name
        assert re.fullmatch(r"redis:7\.\d+\.\d+(-alpine)?", services[name]["image"]), name
    for name in NODES:
        script = script_of(services[name])
        assert '--masterauth "$(cat /run/secrets/redis_password)"' in script, name
        assert "--appendonly yes" in script, name
        assert "--maxmemory-policy noeviction" in script, name
    for name in NODES[1:]:
        assert "--replicaof redis 6379" in script_of(services[name])
    for name in SENTINELS:
        script = script_of(services[name])
        assert '"sentinel monitor ghibli redis 6379 2"' in script  # quorum 2 of 3
        assert 'requirepass \\"$(cat /run/secrets/redis_sentinel_password)\\"' in script


def test_every_ghibli_service_finds_the_primary_through_the_sentinels(tmp_path: Path) -> None:
    services = resolved()["services"]
    for name in GHIBLI:
        env = services[name]["environment"]
        target = parse_redis_url(env["REDIS_URL"])
        assert target.topology == "sentinel", name
        assert target.nodes == tuple((s, 26379) for s in SENTINELS), name
        assert target.service == "ghibli", name
        assert env["REDIS_SENTINEL_PASSWORD_FILE"] == "/run/secrets/redis_sentinel_password"
        assert env["GHIBLI_DURABLE_REPLICAS"] == "1"
        assert {"redis_password", "redis_sentinel_password"} <= {
            s["source"] for s in services[name]["secrets"]
        }
        assert {"redis", *SENTINELS} <= set(services[name]["depends_on"]), name
        # The settings load from it (with the secret files in place).
        secrets = tmp_path / name
        secrets.mkdir()
        for secret in ("redis_password", "redis_sentinel_password"):
            (secrets / secret).write_text(f"{secret}-value\n")
        paths = {k: v.replace("/run/secrets/", f"{secrets}/") for k, v in env.items() if "FILE" in k}
        settings = load_settings(environ={**env, **paths, "HUGGING_FACE_TOKENS_FILE": ""})
        assert parse_redis_url(settings.redis_url).sentinel_password == "redis_sentinel_password-value"


@pytest.mark.timeout(300)
def test_the_topology_runs_passes_the_doctor_and_fails_over(tmp_path: Path) -> None:
    services = resolved()["services"]
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "redis_password").write_text("a long random password\n")
    (secrets / "redis_sentinel_password").write_text("another long random password\n")
    ports = {name: free_port() for name in (*NODES, *SENTINELS)}

    def local(text: str) -> str:
        """The container's command on loopback: secrets here, service names and ports mapped."""
        text = text.replace("/run/secrets/", f"{secrets}/")
        text = text.replace("--replicaof redis 6379", f"--replicaof 127.0.0.1 {ports['redis']}")
        text = text.replace(
            "sentinel monitor ghibli redis 6379", f"sentinel monitor ghibli 127.0.0.1 {ports['redis']}"
        )
        return re.sub(r"--replica-announce-ip \S+", "--replica-announce-ip 127.0.0.1", text)

    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name in (*NODES, *SENTINELS):
            workdir = tmp_path / name
            shim = workdir / "bin"
            shim.mkdir(parents=True)
            entrypoint = shim / "docker-entrypoint.sh"
            if name in NODES:
                tail = f"--port {ports[name]} --bind 127.0.0.1 --dir {workdir} --save '' --loglevel warning"
            else:
                tail = f"--port {ports[name]} --bind 127.0.0.1 --dir {workdir} --loglevel warning"
            # The image's entrypoint only drops to the redis user; here it also runs Debian's binary
            # (not a redis-server found first on PATH) on loopback.
            entrypoint.write_text(f'#!/bin/sh\nshift\nexec {redis_binary()} "$@" {tail}\n')
            entrypoint.chmod(0o755)
            script = local(script_of(services[name])).replace("/data/", f"{workdir}/")
            env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}", "SENTINEL_NAME": "127.0.0.1"}
            out = (workdir / "out.log").open("wb")
            procs.append(
                subprocess.Popen(["sh", "-c", script], env=env, stdout=out, stderr=subprocess.STDOUT)
            )
            out.close()
            wait_until(lambda p=ports[name]: port_open(p), name, 20, procs[-1])
        url = "redis+sentinel://" + ",".join(f"127.0.0.1:{ports[s]}" for s in SENTINELS) + "/ghibli/0"
        doctor_env = base_env(
            REDIS_URL=url,
            REDIS_PASSWORD_FILE=str(secrets / "redis_password"),
            REDIS_SENTINEL_PASSWORD_FILE=str(secrets / "redis_sentinel_password"),
            GHIBLI_DURABLE_REPLICAS="1",
        )

        def doctor() -> list[dict[str, str]]:
            done = subprocess.run(
                [sys.executable, "-m", "ghibli", "doctor", "--check", "redis", "--json"],
                env=doctor_env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            found: list[dict[str, str]] = json.loads(done.stdout)
            return found

        def topology(primary: str) -> bool:
            messages = " | ".join(f["message"] for f in doctor() if f["level"] == "ok")
            wanted = f"primary in use 127.0.0.1:{ports[primary]}, 2 replica(s) connected; 3 of 3 sentinel(s)"
            return wanted in messages and "durable acknowledgements: WAIT 1" in messages

        wait_until(lambda: topology("redis"), "the doctor to find the whole topology", 90)
        assert not [f for f in doctor() if f["level"] == "fail"]
        password = (secrets / "redis_sentinel_password").read_text().strip()
        with redis_sync.Redis(port=ports["sentinel-1"], password=password, socket_timeout=5) as sentinel:
            sentinel.execute_command("SENTINEL", "FAILOVER", "ghibli")
        wait_until(
            lambda: any(topology(name) for name in NODES[1:]), "fail-over with both replicas back", 120
        )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
