"""docker-compose.yml: valid for Compose, consistent with the CLI, Prometheus and its own secrets, and
its Redis really is the Redis `ghibli doctor` calls good.

No Docker engine is needed: Debian's `docker-compose` (v1) validates the file against the Compose
schema and resolves it (`config`), and the Redis service's own command runs against the real
redis-server binary with the image's entrypoint replaced by a pass-through.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from ghibli.cli import cli
from jobs.settings import iter_settings
from tests.procs import ROOT, base_env, free_port, port_open, wait_until

COMPOSE = ROOT / "docker-compose.yml"
OURS = {"ingest", "consumer", "space", "metrics-exporter"}
GRAFANA_PASSWORD = "test-only-grafana"


def compose_config(tmp: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` in a project directory holding the compose file and .env.example as .env."""
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is not installed (scripts/test installs Debian's package)"
    tmp.mkdir(parents=True, exist_ok=True)
    shutil.copy(COMPOSE, tmp / "docker-compose.yml")
    shutil.copy(ROOT / ".env.example", tmp / ".env")
    clean = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL")}
    return subprocess.run(
        [binary, "--project-directory", str(tmp), "-f", str(tmp / "docker-compose.yml"), "config"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@cache
def resolved() -> dict[str, Any]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        done = compose_config(Path(tmp), GRAFANA_ADMIN_PASSWORD=GRAFANA_PASSWORD)
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def raw() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return config


def parses(argv: list[str]) -> None:
    """`argv` is a valid `ghibli` command line: the command exists and every option and value is
    accepted (click parses and converts them without running the command)."""
    assert argv[0] == "ghibli", argv
    command: click.Command = cli
    args = argv[1:]
    while isinstance(command, click.Group):
        name, args = args[0], args[1:]
        assert name in command.commands, f"ghibli has no command {name!r}"
        command = command.commands[name]
    command.make_context(argv[1], list(args))


def container_text(value: str) -> str:
    """What a container gets: `config` keeps `$$` (Compose's escape of a literal `$`) in its output."""
    return value.replace("$$", "$")


def seconds(duration: str) -> float:
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert "".join(n + u for n, u in parts) == duration, duration
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)


@pytest.mark.system
def test_compose_file_validates_and_defines_the_stack(tmp_path: Path) -> None:
    services = resolved()["services"]
    assert set(services) == {
        "redis",
        "ingest",
        "consumer",
        "webhooks",
        "space",
        "metrics-exporter",
        "redis-exporter",
        "prometheus",
        "grafana",
        "nginx",
    }
    assert services["space"]["profiles"] == ["offline"]
    assert services["nginx"]["profiles"] == ["proxy"]
    # The schema check is real: a misspelt key fails it.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "docker-compose.yml").write_text(COMPOSE.read_text().replace("replicas: 3", "replica: 3"))
    shutil.copy(ROOT / ".env.example", broken / ".env")
    done = subprocess.run(
        ["docker-compose", "--project-directory", str(broken), "config"],
        env={"PATH": os.environ["PATH"], "GRAFANA_ADMIN_PASSWORD": "x"},
        capture_output=True,
        text=True,
        check=False,
        cwd=broken,
    )
    assert done.returncode != 0
    assert "replica" in done.stderr


@pytest.mark.system
def test_grafana_needs_an_admin_password_and_allows_no_anonymous_access(tmp_path: Path) -> None:
    done = compose_config(tmp_path)
    assert done.returncode != 0
    assert "GRAFANA_ADMIN_PASSWORD" in done.stderr
    grafana = resolved()["services"]["grafana"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == GRAFANA_PASSWORD
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert grafana["environment"]["GF_USERS_ALLOW_SIGN_UP"] == "false"


@pytest.mark.system
def test_redis_is_pinned_private_durable_and_never_evicts() -> None:
    services = resolved()["services"]
    redis = services["redis"]
    assert re.fullmatch(r"redis:7\.\d+\.\d+(-alpine)?", redis["image"]), redis["image"]
    assert "ports" not in redis
    assert list(redis["networks"]) == ["backend"]
    assert resolved()["networks"]["backend"]["internal"] is True
    script = container_text(redis["command"][-1])
    for flag in (
        "--appendonly yes",
        "--appendfsync everysec",
        "--maxmemory-policy noeviction",
        "--maxmemory ",
    ):
        assert flag in script
    assert '--requirepass "$(cat /run/secrets/redis_password)"' in script
    assert redis["secrets"] == [{"source": "redis_password"}] or redis["secrets"] == ["redis_password"]


def _secret_names(service: dict[str, Any]) -> set[str]:
    return {s if isinstance(s, str) else s["source"] for s in service.get("secrets", [])}


@pytest.mark.system
def test_secrets_are_files_that_each_service_mounts() -> None:
    config = resolved()
    defined = set(config["secrets"])
    assert defined == {"redis_password", "hf_tokens"}
    for name, service in config["services"].items():
        mounted = _secret_names(service)
        assert mounted <= defined, name
        env = service.get("environment") or {}
        for value in env.values():
            if isinstance(value, str) and value.startswith("/run/secrets/"):
                assert value.removeprefix("/run/secrets/") in mounted, (name, value)
    # No secret value is written into the compose file itself (they come from .env or secrets/).
    text = COMPOSE.read_text()
    for key in ("ADMIN_SECRET", "HUGGING_FACE_TOKENS:", "HF_TOKEN", "requirepass "):
        assert not re.search(rf"{key}\s*[:=]?\s*[\w-]{{8,}}", text), key
    consumer = config["services"]["consumer"]
    assert consumer["environment"]["HUGGING_FACE_TOKENS_FILE"] == "/run/secrets/hf_tokens"
    for name in ("ingest", "consumer", "metrics-exporter"):
        assert config["services"][name]["environment"]["REDIS_PASSWORD_FILE"] == "/run/secrets/redis_password"
        assert "backend" in config["services"][name]["networks"]
    # Operators create secrets/; it must never reach git or an image.
    assert re.search(r"^/?secrets/?$", (ROOT / ".gitignore").read_text(), re.M)


@pytest.mark.system
def test_every_service_command_and_healthcheck_is_a_real_cli_command() -> None:
    services = resolved()["services"]
    for name in OURS:
        service = services[name]
        assert service["image"] == services["ingest"]["image"], "one image for every role"
        parses(service["command"])
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD"
        parses(test[1:])
        # And the command runs: `--help` of the real entry point.
        done = subprocess.run(
            [sys.executable, "-m", "ghibli", *service["command"][1:], "--help"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr


@pytest.mark.system
def test_consumers_are_replicated_and_get_their_grace_period() -> None:
    consumer = resolved()["services"]["consumer"]
    assert consumer["deploy"]["replicas"] == 3
    grace = float(consumer["environment"]["GHIBLI_SHUTDOWN_GRACE_SECONDS"])
    defaults = {info.env: info.default for info in iter_settings()}
    assert grace == defaults["GHIBLI_SHUTDOWN_GRACE_SECONDS"]
    # Docker's SIGKILL must come well after the consumer's own grace period has run out.
    assert seconds(consumer["stop_grace_period"]) >= grace + 10


@pytest.mark.system
def test_ingest_is_published_on_loopback_by_default() -> None:
    ingest = resolved()["services"]["ingest"]
    (port,) = ingest["ports"]
    published = port if isinstance(port, str) else f"{port['host_ip']}:{port['published']}:{port['target']}"
    assert published in ("127.0.0.1:8000:8000", "127.0.0.1:8000:8000/tcp")


def test_bind_mounts_exist_in_the_repository() -> None:
    for name, service in raw()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith("./"):
                continue
            if source.startswith("./secrets/"):
                continue  # the operator's own (see the compose file's header)
            assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repository"


@pytest.mark.system
def test_prometheus_scrapes_what_the_stack_runs() -> None:
    config = resolved()
    services = config["services"]
    prometheus = yaml.safe_load((ROOT / "ops/prometheus/prometheus.yml").read_text())
    defaults = {info.env: info.default for info in iter_settings()}
    ports = {
        "ingest": 8000,
        "metrics-exporter": int(str(defaults["GHIBLI_EXPORTER_PORT"])),
        "redis-exporter": 9121,
        "consumer": int(services["consumer"]["environment"]["GHIBLI_METRICS_PORT"]),
        "webhooks": int(services["webhooks"]["environment"]["GHIBLI_WEBHOOK_METRICS_PORT"]),
    }
    seen = set()
    for job in prometheus["scrape_configs"]:
        targets = [t for c in job.get("static_configs", []) for t in c["targets"]]
        targets += [f"{n}:{c['port']}" for c in job.get("dns_sd_configs", []) for n in c["names"]]
        for target in targets:
            host, port = target.rsplit(":", 1)
            if host == "localhost":
                continue
            assert host in services, f"Prometheus scrapes {target}, but the stack has no service {host}"
            assert int(port) == ports[host], f"{host} serves metrics on {ports[host]}, not {port}"
            shared = set(services[host]["networks"]) & set(services["prometheus"]["networks"])
            assert shared, f"Prometheus cannot reach {host}"
            seen.add(host)
    assert seen == set(ports)


@pytest.mark.system
@pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli comes with Debian's redis-server")
def test_the_compose_redis_passes_the_doctor(tmp_path: Path) -> None:
    """Run the Redis service's own command (and its healthcheck) and ask `ghibli doctor` about it."""
    redis = resolved()["services"]["redis"]
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "redis_password").write_text("a long random password\n")
    shim = tmp_path / "bin"
    shim.mkdir()
    port = free_port()
    # The image's entrypoint only drops to the redis user; here it also keeps the server on loopback.
    entrypoint = shim / "docker-entrypoint.sh"
    entrypoint.write_text(
        f'#!/bin/sh\nexec "$@" --port {port} --bind 127.0.0.1 --dir {tmp_path} --save "" --loglevel warning\n'
    )
    entrypoint.chmod(0o755)
    script = container_text(redis["command"][-1]).replace("/run/secrets/", f"{secrets}/")
    env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}"}
    server = subprocess.Popen([*redis["command"][:-1], script], env=env)
    try:
        wait_until(lambda: port_open(port), "compose redis", 20, server)  # type: ignore[arg-type]
        health = redis["healthcheck"]["test"]
        assert health[0] == "CMD-SHELL"
        probe = container_text(health[1]).replace("/run/secrets/", f"{secrets}/")
        probe = probe.replace("redis-cli", f"redis-cli -p {port}")
        wait_until(
            lambda: subprocess.run(["sh", "-c", probe], check=False).returncode == 0, "healthcheck", 20
        )

        doctor_env = base_env(
            REDIS_URL=f"redis://127.0.0.1:{port}/0", REDIS_PASSWORD_FILE=str(secrets / "redis_password")
        )
        done = subprocess.run(
            [sys.executable, "-m", "ghibli", "doctor", "--check", "redis"],
            env=doctor_env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "WARN" not in done.stdout, done.stdout
        assert "FAIL" not in done.stdout, done.stdout
        assert "maxmemory-policy noeviction" in done.stdout
        assert "append-only file on (appendfsync everysec)" in done.stdout

        # Without the password nobody gets in.
        denied = subprocess.run(
            ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True, check=False, timeout=30
        )
        assert "NOAUTH" in denied.stdout + denied.stderr
    finally:
        server.terminate()
        server.wait(20)


@pytest.mark.system
def test_the_offline_space_gets_no_secrets(tmp_path: Path) -> None:
    """It needs neither Redis nor tokens: not the .env (ADMIN_SECRET, API keys, webhook secret,
    tokens) and no secret file, only its own settings."""
    secrets = {
        "ADMIN_SECRET": "admin-secret-4471",
        "HUGGING_FACE_TOKENS": "hf_TokenInDotEnvAbCdEf123",
        "GHIBLI_API_KEYS": "id=shop,sha256=" + "ab" * 32,
        "GHIBLI_SPACE_ENGINE": "fast",
    }
    project = tmp_path / "project"
    done = compose_config(project, GRAFANA_ADMIN_PASSWORD=GRAFANA_PASSWORD)  # writes the files
    assert done.returncode == 0, done.stderr
    env_file = project / ".env"
    env_file.write_text(env_file.read_text() + "".join(f"\n{k}={v}" for k, v in secrets.items()) + "\n")
    clean = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL")}
    done = subprocess.run(
        ["docker-compose", "--project-directory", str(project), "--profile", "offline", "config"],
        env={**clean, "GRAFANA_ADMIN_PASSWORD": GRAFANA_PASSWORD},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    space = services["space"]
    assert "env_file" not in raw()["services"]["space"]
    assert not space.get("secrets")
    environment = space.get("environment") or {}
    assert environment.get("GHIBLI_SPACE_ENGINE") == "fast"  # its own settings still come through
    for name, value in secrets.items():
        if name != "GHIBLI_SPACE_ENGINE":
            assert name not in environment, name
            assert value not in str(space), name
    assert services["ingest"]["environment"]["ADMIN_SECRET"] == secrets["ADMIN_SECRET"]  # the others do
