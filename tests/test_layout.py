"""The package boundaries of the design: ingest and consumers meet only in jobs, and neither loads
the gradio server (a heavy import that only space/ and the tests need)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.procs import ROOT


def _imported_packages(package: str) -> dict[str, set[str]]:
    """Top-level package of every import in each module of `package`, keyed by file."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("ingest", "consumers"), ("consumers", "ingest"), ("sandbox", "ingest"), ("sandbox", "consumers")],
)
def test_ingest_and_consumers_never_import_each_other(package: str, forbidden: str) -> None:
    modules = _imported_packages(package)
    assert len(modules) > 5, f"found too few modules under {package}/ to trust the check"
    offenders = sorted(path for path, names in modules.items() if forbidden in names)
    assert offenders == [], f"{package}/ imports {forbidden}/ in {offenders}"


def test_ingest_and_consumers_start_without_loading_the_gradio_server() -> None:
    probe = (
        "import sys\n"
        "import ingest.app, consumers.main, consumers.worker, jobs.settings, metrics.exporter, ghibli.cli\n"
        "print(','.join(sorted(m for m in sys.modules if m == 'gradio' or m.startswith('gradio.'))))\n"
        "print('gradio_client' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    gradio_modules, client_loaded = done.stdout.splitlines()
    assert gradio_modules == "", f"the gradio server was imported: {gradio_modules}"
    # The probe would pass vacuously if consumers no longer reached gradio_client at all.
    assert client_loaded == "True"


def test_the_space_package_is_the_one_that_uses_gradio() -> None:
    users = {path for path, names in _imported_packages("space").items() if "gradio" in names}
    assert Path("space/app.py").as_posix() in users
