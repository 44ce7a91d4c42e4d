"""Every environment variable the code reads is documented in .env.example and the docs, and every
variable .env.example documents is read by the code or by docker compose.

The list is derived from the code, so a variable added anywhere shows up here: Settings fields,
options of every `ghibli` command (click `envvar`), and literal names read from an environment
mapping anywhere in the packages (`os.environ[...]`, `.get(...)`, `os.getenv(...)`, `in environ`,
and names listed inside a function that reads the environment).
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import click

from ghibli.cli import cli
from jobs.settings import iter_settings
from tests.procs import ROOT

ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
# Set by our code for libraries (telemetry off), never read by it: not operator settings.
WRITTEN_ONLY = {"GRADIO_ANALYTICS_ENABLED", "HF_HUB_DISABLE_TELEMETRY", "PROMETHEUS_MULTIPROC_DIR"}


def packages() -> list[Path]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [ROOT / name for name in project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]]


def _is_environ(node: ast.AST) -> bool:
    text = ast.unparse(node)
    return text.endswith(("environ", "env")) or text == "os"


def _written(tree: ast.AST) -> set[str]:
    """Names the code only sets: `environ.setdefault("X", ...)`, `environ["X"] = ...`."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("setdefault", "pop")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.add(str(node.args[0].value))
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.slice, ast.Constant)
        ):
            names.add(str(node.slice.value))
    return names


def names_read_in(source: str) -> set[str]:
    tree = ast.parse(source)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("get", "getenv") and _is_environ(node.func.value) and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.add(arg.value)
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _is_environ(node.value):
            if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                found.add(node.slice.value)
        elif isinstance(node, ast.Compare) and any(isinstance(op, ast.In) for op in node.ops):
            if isinstance(node.left, ast.Constant) and _is_environ(node.comparators[0]):
                found.add(str(node.left.value))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            # A function that reads an environment mapping: every variable name it spells out
            # (e.g. a tuple of names it then looks up one by one).
            body = ast.Module(body=node.body, type_ignores=[])
            # (`os` alone is not a mapping: os.sysconf("SC_PAGE_SIZE") spells no variable.)
            mappings = (n for n in ast.walk(body) if isinstance(n, ast.Name | ast.Attribute))
            if any(_is_environ(n) and ast.unparse(n) != "os" for n in mappings):
                found.update(
                    const.value
                    for const in ast.walk(body)
                    if isinstance(const, ast.Constant) and isinstance(const.value, str)
                )
    return {n for n in found if ENV_NAME.fullmatch(n)} - _written(tree)


def read_by_code() -> dict[str, str]:
    """Variable -> where it is read."""
    read: dict[str, str] = {info.env: "jobs/settings.py" for info in iter_settings()}

    def walk(command: click.Command, path: str) -> Iterator[tuple[str, str]]:
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from walk(sub, f"{path} {name}")
        for param in command.params:
            envvars = param.envvar if isinstance(param.envvar, list | tuple) else [param.envvar]
            for envvar in envvars:
                if envvar:
                    yield envvar, path

    for envvar, path in walk(cli, "ghibli"):
        read.setdefault(envvar, path)
    for package in packages():
        for file in package.rglob("*.py"):
            for name in names_read_in(file.read_text()):
                read.setdefault(name, str(file.relative_to(ROOT)))
    return {k: v for k, v in read.items() if k not in WRITTEN_ONLY}


def documented_in_env_example() -> set[str]:
    names = set()
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.fullmatch(r"#? ?([A-Z][A-Z0-9_]*)=.*", line.strip())
        if match:
            names.add(match.group(1))
    return names


def read_by_compose() -> set[str]:
    return set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", (ROOT / "docker-compose.yml").read_text()))


def test_the_scan_finds_what_the_code_reads() -> None:
    """The scanner itself: it sees the forms the code uses (and so would see a new variable)."""
    source = """
import os
A = os.environ.get("GHIBLI_ONE")
B = os.getenv("GHIBLI_TWO", "x")
C = os.environ["GHIBLI_THREE"]
os.environ.setdefault("GHIBLI_WRITTEN", "1")
def tokens(environ):
    if "GHIBLI_FOUR" in environ:
        pass
    return [environ.get(name, "") for name in ("GHIBLI_FIVE", "HF_SIX")]
def unrelated():
    return "NOT_AN_ENV_READ"
"""
    assert names_read_in(source) == {
        "GHIBLI_ONE",
        "GHIBLI_TWO",
        "GHIBLI_THREE",
        "GHIBLI_FOUR",
        "GHIBLI_FIVE",
        "HF_SIX",
    }
    read = read_by_code()
    # Settings, click options and the token module's own reads are all seen.
    assert {
        "REDIS_URL",
        "GHIBLI_SPACE_PORT",
        "GHIBLI_UP_CONSUMERS",
        "HF_TOKEN",
        "HUGGING_FACE_TOKENS",
    } <= set(read)


def test_every_variable_the_code_reads_is_in_env_example() -> None:
    missing = {
        name: where for name, where in read_by_code().items() if name not in documented_in_env_example()
    }
    assert not missing, f"document these in .env.example: {missing}"


def test_every_variable_the_code_reads_is_in_the_docs() -> None:
    docs = "\n".join(path.read_text() for path in (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))))
    missing = {name: where for name, where in read_by_code().items() if not re.search(rf"\b{name}\b", docs)}
    assert not missing, f"document these in docs/configuration.md (or another page of docs/): {missing}"


def test_every_documented_variable_is_read() -> None:
    read = set(read_by_code()) | read_by_compose()
    code = "\n".join(f.read_text() for p in packages() for f in p.rglob("*.py"))
    unread = set()
    for name in documented_in_env_example() - read:
        # Numbered variables (HUGGING_FACE_TOKEN_1..N) are matched by pattern in the code.
        stem = re.fullmatch(r"(.+_)\d+", name)
        if stem and stem.group(1) in code:
            continue
        unread.add(name)
    assert not unread, f".env.example documents variables nothing reads: {sorted(unread)}"
