"""The README's configuration tables are the ones the code generates (no drift)."""

from __future__ import annotations

import subprocess
import sys

from tests.procs import ROOT


def test_readme_configuration_tables_match_the_code() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import readme_config
    finally:
        sys.path.pop(0)
    readme = (ROOT / "README.md").read_text()
    assert readme_config.current_readme_block(readme) == readme_config.generated(), (
        "README.md is stale: run `uv run python scripts/readme_config.py --write`"
    )


def test_the_generator_runs_as_a_script() -> None:
    done = subprocess.run(
        [sys.executable, "scripts/readme_config.py"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "| `REDIS_URL` |" in done.stdout
    assert "| `GHIBLI_SPACE_PORT` | `--port` |" in done.stdout
