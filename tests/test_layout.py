"""The package boundaries of the design as import contracts (ingest, consumers and webhooks meet
only in jobs; jobs and metrics import no side; space imports nothing of the pipeline), a line cap
per module, and no side loads the gradio server (a heavy import only space/ and the tests need)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.procs import ROOT


def _imported_packages(package: str, root: Path = ROOT) -> dict[str, set[str]]:
    """Top-level package of every import in each module of `package`, keyed by file."""
    found: dict[str, set[str]] = {}
    for path in sorted((root / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[path.relative_to(root).as_posix()] = names
    return found


SIDES = ("ingest", "consumers", "webhooks")
PIPELINE = ("jobs", "metrics", "sandbox", *SIDES, "ghibli", "bench")

# Import contracts: each package, and what it must never import. The sides (ingest, consumers and
# the webhook dispatcher) meet only in jobs; the contract (jobs) and metrics serve every side, so
# they import none; the sandbox runs untrusted decodes and knows no side; the offline Space is a
# Gradio app of its own and needs nothing of the pipeline.
CONTRACTS = {
    "ingest": ("consumers", "webhooks", "ghibli", "bench"),
    "consumers": ("ingest", "webhooks", "ghibli", "bench"),
    "webhooks": ("ingest", "consumers", "ghibli", "bench"),
    "jobs": (*SIDES, "sandbox", "ghibli", "bench"),
    "metrics": (*SIDES, "sandbox", "ghibli", "bench"),
    "sandbox": (*SIDES, "ghibli", "bench"),
    "space": PIPELINE,
}


def forbidden_imports(package: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    """Modules of `package` that import a forbidden package, with what they import."""
    return {
        path: sorted(names & set(forbidden))
        for path, names in _imported_packages(package).items()
        if names & set(forbidden)
    }


@pytest.mark.parametrize(("package", "forbidden"), CONTRACTS.items())
def test_import_contracts(package: str, forbidden: tuple[str, ...]) -> None:
    assert len(_imported_packages(package)) >= 3, f"found too few modules under {package}/ to trust the check"
    offenders = forbidden_imports(package, forbidden)
    assert offenders == {}, f"{package}/ must not import {list(forbidden)}; found {offenders}"


def test_the_contract_check_sees_an_import_at_any_depth(tmp_path: Path) -> None:
    """The check must see a late import inside a function, as the code base uses them."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "late.py").write_text("def f():\n    from ingest.app import create_app\n")
    found = _imported_packages("pkg", root=tmp_path)
    assert found == {"pkg/late.py": {"ingest"}}


# A module is one job: above this many lines it is probably two. Those listed have a reason.
LINE_CAP = 450
OVER_THE_CAP = {
    # One struct holds every setting with its help text, the single source of flags, variables and docs.
    "jobs/settings.py": "every setting with its help",
    # A browser test file: one fixture stack and the page's journeys, read top to bottom.
    "tests/test_web_page.py": "the page's journeys",
    "consumers/worker.py": "the worker loop read top to bottom",
    "consumers/space_call.py": "one Space call, its progress and its errors",
}


def test_modules_stay_small() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for package in (*PIPELINE, "space", "tests", "scripts")
        for path in (ROOT / package).rglob("*.py")
    }
    over = {path: lines for path, lines in sizes.items() if lines > LINE_CAP and path not in OVER_THE_CAP}
    assert over == {}, f"modules over {LINE_CAP} lines (split them, or say why in OVER_THE_CAP): {over}"
    stale = sorted(path for path in OVER_THE_CAP if sizes.get(path, 0) <= LINE_CAP)
    assert stale == [], f"no longer over {LINE_CAP} lines, drop from OVER_THE_CAP: {stale}"


@pytest.mark.system
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


def test_the_contract_has_one_face() -> None:
    """`from jobs import ...` gives the contract's names, the very objects of their modules."""
    import importlib

    import jobs

    for name in jobs.__all__:
        module = importlib.import_module(jobs._FACE[name])
        assert getattr(jobs, name) is getattr(module, name), name
    with pytest.raises(AttributeError):
        _ = jobs.not_a_name  # type: ignore[attr-defined]
