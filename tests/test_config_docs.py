"""The configuration tables of docs/configuration.md are the ones the code generates (no drift)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.procs import ROOT


def test_configuration_tables_match_the_code() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import config_docs
    finally:
        sys.path.pop(0)
    doc = (ROOT / "docs" / "configuration.md").read_text()
    assert config_docs.current_block(doc) == config_docs.generated(), (
        "docs/configuration.md is stale: run `uv run python scripts/config_docs.py --write`"
    )


@pytest.mark.system
def test_the_generator_runs_as_a_script() -> None:
    done = subprocess.run(
        [sys.executable, "scripts/config_docs.py"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "| `REDIS_URL` |" in done.stdout
    assert "| `GHIBLI_SPACE_PORT` | `--port` |" in done.stdout


def test_every_setting_has_a_role_and_the_essential_ones_are_few() -> None:
    from jobs.setting_roles import ESSENTIAL, ROLE_TITLES, ROLES
    from jobs.settings import iter_settings

    names = {info.name for info in iter_settings()}
    assert set(ROLES) == set(ROLE_TITLES)
    placed = {name for role in ROLES.values() for name in role}
    assert names - placed == set(), "settings no role reads: add them to jobs/setting_roles.py"
    assert placed - names == set(), "roles name settings that do not exist"
    assert set(ESSENTIAL) <= names
    assert 10 <= len(ESSENTIAL) <= 20
