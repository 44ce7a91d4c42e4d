"""What `ghibli up` tells a newcomer before and while it starts: its help shows the values it really
uses (not the settings' defaults, which name the real Space and a Redis on 6379), and Redis's start-up
warnings that do not apply to a local stack stay out of its output while real warnings get through."""

from __future__ import annotations

import re

from click.testing import CliRunner

from ghibli.cli import UP_SHOWN, cli
from ghibli.up_children import redis_noise
from jobs.settings import Settings


def _one_line(text: str) -> str:
    """Help text with click's wrapping undone (a value may be split anywhere, even inside a URL)."""
    return re.sub(r"\s+", "", text)


def test_up_help_shows_the_values_up_uses_not_the_settings_defaults() -> None:
    result = CliRunner().invoke(cli, ["up", "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    shown = _one_line(result.output)
    for name, value in UP_SHOWN.items():
        assert _one_line(f"[default: {value}]") in shown, name
    defaults = Settings()
    # The settings' own defaults for what up picks itself would mislead: up never uses them.
    assert _one_line(f"[default: {defaults.space}]") not in shown
    assert _one_line(f"[default: {defaults.redis_url}]") not in shown


def test_redis_start_up_noise_is_dropped_and_real_warnings_are_kept() -> None:
    noise = [
        b"1:C 05 Dec 2026 12:00:00.000 # oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo",
        b"1:C 05 Dec 2026 12:00:00.000 # Redis version=7.0.15, bits=64, commit=00000000, pid=1",
        b"1:M 05 Dec 2026 12:00:00.000 # WARNING Memory overcommit must be enabled! Without it, ...",
        b"1:M 05 Dec 2026 12:00:00.000 # WARNING: The TCP backlog setting of 511 cannot be enforced",
    ]
    kept = [
        b"1:M 05 Dec 2026 12:00:00.000 # Can't open the append-only file: Permission denied",
        b"1:M 05 Dec 2026 12:00:00.000 # WARNING: 32 bit instance detected but no memory limit set",
        b"1:M 05 Dec 2026 12:00:00.000 * Ready to accept connections",
    ]
    assert [line for line in noise if not redis_noise(line)] == []
    assert [line for line in kept if redis_noise(line)] == []
