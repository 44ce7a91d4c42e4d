"""The configuration tables of docs/configuration.md, generated from the code (settings and CLI options).

    uv run python scripts/config_docs.py            # print the tables
    uv run python scripts/config_docs.py --write    # refresh them in docs/configuration.md

tests/test_config_docs.py fails when docs/configuration.md drifts from what this prints.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ghibli.cli import cli
from jobs.settings import iter_settings

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
START, END = "<!-- config:start -->", "<!-- config:end -->"
HEADER = "| Variable | Option | Default | What it does |\n|---|---|---|---|"
# Commands with options of their own (not settings), documented below the settings table.
COMMANDS = ("up", "space", "submit")


def _cell(value: object) -> str:
    text = "(empty)" if value in ("", None) else str(value)
    return f"`{text}`"


def settings_table() -> str:
    rows = [
        f"| `{i.env}` | {'(environment only)' if i.secret else f'`{i.option}`'} | "
        f"{_cell('' if i.secret else i.default)} | {i.help} |"
        for i in iter_settings()
    ]
    return "\n".join([HEADER, *rows])


def command_table(name: str) -> str:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None, name
    settings = {i.env for i in iter_settings()}
    rows = []
    for param in command.params:
        if not isinstance(param, click.Option) or not param.envvar:
            continue
        env = param.envvar if isinstance(param.envvar, str) else param.envvar[0]
        if env in settings:
            continue
        default = param.default
        default = str(default) if hasattr(default, "__fspath__") else default
        rows.append(f"| `{env}` | `{param.opts[-1]}` | {_cell(default)} | {param.help} |")
    return "\n".join([f"`ghibli {name}`:", "", HEADER, *rows])


def generated() -> str:
    parts = [settings_table(), "Options that are not settings:", *(command_table(c) for c in COMMANDS)]
    return "\n\n".join(parts)


def current_block(text: str) -> str:
    start, end = text.index(START) + len(START), text.index(END)
    return text[start:end].strip()


def main() -> None:
    block = generated()
    if "--write" not in sys.argv:
        print(block)
        return
    text = DOC.read_text()
    start, end = text.index(START) + len(START), text.index(END)
    DOC.write_text(text[:start] + "\n" + block + "\n" + text[end:])


if __name__ == "__main__":
    main()
