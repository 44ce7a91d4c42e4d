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
from jobs.setting_roles import ESSENTIAL, ROLE_TITLES, ROLES, roles_of
from jobs.settings import SettingInfo, iter_settings

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
START, END = "<!-- config:start -->", "<!-- config:end -->"
HEADER = "| Variable | Option | Default | What it does |\n|---|---|---|---|"
# Commands with options of their own (not settings), documented below the settings table.
COMMANDS = ("up", "space", "submit")


def _cell(value: object) -> str:
    text = "(empty)" if value in ("", None) else str(value)
    return f"`{text}`"


def _row(i: SettingInfo) -> str:
    return (
        f"| `{i.env}` | {'(environment only)' if i.secret else f'`{i.option}`'} | "
        f"{_cell('' if i.secret else i.default)} | {i.help} |"
    )


def settings_tables() -> str:
    """The essential settings first; then every other one under the first role that reads it."""
    infos = {i.name: i for i in iter_settings()}
    parts = [
        "**The settings most deployments set:**",
        "\n".join([HEADER, *(_row(infos[n]) for n in ESSENTIAL)]),
    ]
    for role, names in ROLES.items():
        rest = [n for n in names if n not in ESSENTIAL and roles_of(n)[0] == role]
        if not rest:
            continue
        rows = []
        for name in rest:
            also = [ROLE_TITLES[r].split(" (")[0].lower() for r in roles_of(name)[1:]]
            row = _row(infos[name])
            rows.append(row[:-2] + f" Also read by: {', '.join(also)}. |" if also else row)
        parts += [f"**{ROLE_TITLES[role]}:**", "\n".join([HEADER, *rows])]
    return "\n\n".join(parts)


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
    parts = [settings_tables(), "Options that are not settings:", *(command_table(c) for c in COMMANDS)]
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
