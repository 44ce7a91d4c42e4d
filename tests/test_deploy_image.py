"""The container image, without a Docker engine: the Dockerfile's rules, its build context, and its
environment built the way the Dockerfile builds it and run the way docker-compose.yml runs it.

`uv sync` runs with the Dockerfile's own arguments in a copy of the build context (what
.dockerignore lets through), into a fresh environment outside the repository. Every role then
starts from that environment with the image's ENV and .env.example, and each compose HEALTHCHECK
command must pass against it; one photo goes through the whole thing.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from tests.photos import encode, landscape
from tests.procs import ROOT, Proc, RedisServer, free_port, port_open, wait_until

DOCKERFILE = ROOT / "Dockerfile"


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]


def parse_dockerfile() -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, each with its (KEYWORD, arguments) in order."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        rest = re.sub(r"\s+", " ", rest.strip())
        if keyword == "FROM":
            image, _, name = rest.partition(" AS ")
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
            stages.append(Stage(image, name.strip()))
        elif stages:
            stages[-1].instructions.append((keyword, rest))
        elif keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
    return args, stages


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for arg in stage.all("ENV"):
        for word in shlex.split(arg):
            name, _, value = word.partition("=")
            env[name] = value
    return env


def stage_args(stage: Stage) -> dict[str, str]:
    return {n: d for n, _, d in (a.partition("=") for a in stage.all("ARG"))}


def test_final_stage_is_small_unprivileged_and_health_checked() -> None:
    args, stages = parse_dockerfile()
    build = next(s for s in stages if s.name == "build")
    final = stages[-1]
    assert len(stages) >= 3
    assert final.base == build.base, "runtime and build share the interpreter (the venv's symlinks)"
    assert re.fullmatch(r"python:3\.\d+-slim-\w+", final.base)
    assert re.fullmatch(r"ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+", args["UV_IMAGE"]), "uv is pinned"
    # uv and the build stage's tree stay behind: only the environment is copied.
    copies = final.all("COPY")
    assert copies == ["--from=build /opt/ghibli /opt/ghibli"]
    runs = " ".join(final.all("RUN"))
    for tool in ("gcc", "build-essential", "make ", "uv ", "pip install", "git "):
        assert tool not in runs, f"{tool.strip()} in the final stage"
    assert "--no-install-recommends tini" in runs
    assert "rm -rf /var/lib/apt/lists/*" in runs
    (user,) = final.all("USER")
    assert user not in ("root", "0")
    assert re.search(r"useradd --system --uid \d+ --gid ghibli", runs)
    assert json.loads(final.all("ENTRYPOINT")[0]) == ["/usr/bin/tini", "--"]
    assert json.loads(final.all("CMD")[0])[:2] == ["ghibli", "ingest"]
    (health,) = final.all("HEALTHCHECK")
    options, _, command = health.partition(" CMD ")
    assert "--interval=" in options
    assert "--start-period=" in options
    assert json.loads(command)[:4] == ["ghibli", "doctor", "--probe", "container"]
    # The published ports are the ones the roles listen on.
    exposed = set(final.all("EXPOSE")[0].split())
    assert {"8000", "7861", "9102"} <= exposed


def context_files() -> list[Path]:
    """What `docker build .` sends, by .dockerignore's rules (last matching pattern wins)."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    kept: list[Path] = []
    skip = {".git", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache", "node_modules"}
    for path in sorted(ROOT.rglob("*")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in skip or not path.is_file():
            continue
        included = True
        for pattern in patterns:
            negate = pattern.startswith("!")
            pat = pattern.lstrip("!").rstrip("/")
            matches = any(
                fnmatch.fnmatch(str(Path(*rel.parts[:i])), pat.removeprefix("**/"))
                or fnmatch.fnmatch(str(Path(*rel.parts[:i])), pat)
                or (pat.startswith("**/") and fnmatch.fnmatch(rel.parts[i - 1], pat[3:]))
                for i in range(1, len(rel.parts) + 1)
            )
            if matches:
                included = negate
        if included:
            kept.append(rel)
    return kept


def test_build_context_holds_the_packages_and_nothing_private() -> None:
    files = {str(p) for p in context_files()}
    tops = {p.split("/")[0] for p in files}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = set(project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"])
    assert packages | {"pyproject.toml", "uv.lock", "README.md"} == tops
    assert "jobs/lua/claim.lua" in files  # data files of the packages travel too
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]
    for private in (".env", ".env.example", "secrets", "tests", ".git", ".venv", ".ghibli"):
        assert private not in tops


def build_image_env(tmp: Path) -> Path:
    """Run the build stage's `uv sync` commands, as written, in a copy of the build context."""
    _, stages = parse_dockerfile()
    build = next(s for s in stages if s.name == "build")
    context = tmp / "context"
    for rel in context_files():
        (context / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, context / rel)
    venv = tmp / "opt-ghibli"
    env = {
        **os.environ,
        **stage_args(build),
        **env_of(build),
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_PYTHON": sys.executable,  # the image's interpreter is the base image's; here, ours
        "UV_COMPILE_BYTECODE": "0",  # saves time here; same files either way
        "UV_LINK_MODE": "hardlink",
    }
    env.pop("VIRTUAL_ENV", None)
    syncs = [run for run in build.all("RUN") if "uv sync" in run]
    assert len(syncs) == 2, "dependencies first, then the project"
    for run in syncs:
        command = " ".join(w for w in run.split(" ") if not w.startswith("--mount="))
        done = subprocess.run(
            ["sh", "-c", command],
            cwd=context,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    # The final stage needs only the environment: the context is gone there.
    shutil.rmtree(context)
    return venv


def dotenv_values(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line.strip())
        if match:
            values[match.group(1)] = match.group(2)
    return values


def start_outside_the_repository(argv: list[str], env: dict[str, str], cwd: Path, name: str) -> Proc:
    """Like tests.procs.Proc.start, but from `cwd`: nothing may come from the source tree."""
    proc = Proc(argv, env, cwd / f"{name}.log")
    with proc.log_path.open("ab") as log:
        proc.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
    return proc


@pytest.mark.system
@pytest.mark.timeout(900)
def test_the_image_environment_runs_every_role_and_passes_its_healthchecks(tmp_path: Path) -> None:
    venv = build_image_env(tmp_path)
    assert (venv / "bin" / "ghibli").exists()
    assert not list(venv.glob("lib/python*/site-packages/_ghibli_pipeline*.pth")), "installed, not editable"
    _, stages = parse_dockerfile()
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]

    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "redis_password").write_text("compose-like password\n")
    (secrets / "hf_tokens").write_text("")  # `touch secrets/hf_tokens`: anonymous calls
    redis = RedisServer(
        tmp_path / "redis", appendonly=True, extra=("--requirepass", "compose-like password")
    ).start()
    ports = {"ingest": free_port(), "space": free_port(), "consumer": free_port(), "exporter": free_port()}
    image_env = env_of(stages[-1])
    base = {
        # What a container of the image sees: the image's ENV, then .env (env_file), then the
        # service's own environment; loopback instead of 0.0.0.0, and ports that are free here.
        "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        **{k: v for k, v in image_env.items() if k != "PATH"},
        **dotenv_values(ROOT / ".env.example"),
        "HF_HOME": str(tmp_path / "hf"),
        "GHIBLI_HOST": "127.0.0.1",
        "GHIBLI_SPACE_HOST": "127.0.0.1",
        "GHIBLI_METRICS_HOST": "127.0.0.1",
        "GHIBLI_PORT": str(ports["ingest"]),
        "GHIBLI_SPACE_PORT": str(ports["space"]),
        "GHIBLI_EXPORTER_PORT": str(ports["exporter"]),
        "GHIBLI_SPACE": f"http://127.0.0.1:{ports['space']}/",
        "GHIBLI_SPACE_ENGINE": "fast",
    }

    def service_env(name: str) -> dict[str, str]:
        env = {**base}
        for key, value in (compose[name].get("environment") or {}).items():
            # ${NAME:-default}: compose takes NAME from .env (here: the base) when it is set there.
            interpolated = re.sub(
                r"\$\{(\w+):-([^}]*)\}", lambda m: base.get(m.group(1), m.group(2)), str(value)
            )
            env[key] = interpolated.replace("/run/secrets/", f"{secrets}/")
        env["REDIS_URL"] = redis.url
        if name == "consumer":
            env["GHIBLI_METRICS_PORT"] = str(ports["consumer"])
        return env

    procs: list[Proc] = []
    try:
        for name in ("space", "ingest", "consumer", "metrics-exporter"):
            argv = [str(venv / "bin" / compose[name]["command"][0]), *compose[name]["command"][1:]]
            procs.append(start_outside_the_repository(argv, service_env(name), tmp_path, name))

        by_name = dict(zip(("space", "ingest", "consumer", "metrics-exporter"), procs, strict=True))

        def healthcheck(name: str) -> int:
            """The service's compose HEALTHCHECK command, run as Docker runs it."""
            test = compose[name]["healthcheck"]["test"]
            assert test[0] == "CMD"
            argv = [str(venv / "bin" / test[1]), *test[2:]]
            env = service_env(name)
            done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, timeout=120, check=False)
            return done.returncode

        for name, port in (("space", "space"), ("ingest", "ingest"), ("metrics-exporter", "exporter")):
            try:
                wait_until(lambda p=ports[port]: port_open(p), name, 180, by_name[name].proc)
            except RuntimeError as exc:  # say why it exited (seen once under load: ingest exit 3)
                raise AssertionError(f"{exc}\n{by_name[name].log()[-3000:]}") from None
            assert healthcheck(name) == 0, by_name[name].log()[-3000:]

        # The whole image works: one photo in, a picture out.
        api = f"http://127.0.0.1:{ports['ingest']}"
        response = httpx.post(
            f"{api}/v1/jobs",
            files={"image": ("photo.jpg", encode(landscape(320, 240)), "image/jpeg")},
            data={"width": "256", "height": "256", "seed": "3"},
            timeout=30,
        )
        assert response.status_code == 202, response.text
        job = response.json()
        deadline = time.monotonic() + 180
        while job["status"] not in ("succeeded", "failed", "cancelled") and time.monotonic() < deadline:
            time.sleep(0.5)
            job = httpx.get(f"{api}/v1/jobs/{job['id']}", timeout=10).json()
        consumer = by_name["consumer"]
        assert job["status"] == "succeeded", (job, consumer.log()[-3000:])
        result = httpx.get(f"{api}{job['result']['url']}", timeout=10)
        assert result.headers["content-type"].startswith("image/")

        # The consumer that did it is healthy; stopped, it is not (its liveness key is gone).
        assert healthcheck("consumer") == 0, consumer.log()[-3000:]
        consumer.stop(60)
        assert healthcheck("consumer") == 1
    finally:
        for proc in reversed(procs):
            proc.stop()
        redis.stop()
