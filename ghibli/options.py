"""Click options shared by the commands that run or inspect the stack.

Options that are settings come from jobs.settings (same names, same environment variables, same
help, typed INTEGER/FLOAT/BOOLEAN like the setting), so `--help`, the table in docs/configuration.md
and the validation messages cannot drift apart; ranges are checked by the settings object.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click

from jobs.setting_roles import ROLES
from jobs.settings import Settings, SettingsError, iter_settings, load_settings

__all__ = [
    "COMMON",
    "CONSUMER",
    "DECODE",
    "EXPORTER",
    "INGEST",
    "WEBHOOKS",
    "build_settings",
    "configure_logs",
    "settings_options",
]

F = TypeVar("F", bound=Callable[..., Any])


def _options(role: str) -> tuple[str, ...]:
    """The settings of a role that are options: secrets are read from the environment only."""
    secret = {info.name for info in iter_settings() if info.secret}
    return tuple(name for name in ROLES[role] if name not in secret)


COMMON = _options("common")
DECODE = _options("decode")
CONSUMER = _options("consumer")
INGEST = _options("ingest")
WEBHOOKS = _options("webhooks")
EXPORTER = _options("exporter")


_CLICK_TYPES: dict[type, click.ParamType[Any]] = {int: click.INT, float: click.FLOAT, bool: click.BOOL}


def settings_options(*names: str, shown: Mapping[str, str] | None = None) -> Callable[[F], F]:
    """Click options for these settings; secrets are read from the environment only.

    `shown` replaces the default a command's help shows where the command itself picks the value
    (`up` starts its own Redis and Space), so help never lists a default that is not used."""
    infos = {info.name: info for info in iter_settings()}
    shown = shown or {}

    def decorate(fn: F) -> F:
        for name in reversed(names):
            info = infos[name]
            fn = click.option(
                info.option,
                name,
                type=_CLICK_TYPES.get(info.value_type, click.STRING),
                envvar=info.env,
                show_envvar=True,
                default=None,
                help=f"{info.help} [default: {shown.get(name, info.default)}]",
            )(fn)
        return fn

    return decorate


def build_settings(values: dict[str, Any]) -> Settings:
    """The settings from a command's option values (options that are not settings are left out)."""
    names = {info.name for info in iter_settings()}
    try:
        return load_settings({k: v for k, v in values.items() if k in names})
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


def configure_logs(settings: Settings) -> None:
    """Logs as the settings say; imported late so commands that never log stay fast to start."""
    from jobs.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)
