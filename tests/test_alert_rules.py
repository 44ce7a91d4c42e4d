"""The alert rules, scrape config and dashboard under ops/, checked with the real promtool.

`promtool test rules` runs the unit tests in ops/prometheus/tests. On top, each alert rule is
mutated twice (always true, never true) and the unit tests must then fail: proof that every alert
has a test that sees it fire and a test that sees it stay silent.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from metrics.definitions import QUEUE_GAUGES
from metrics.exposition import render_latest
from tests.procs import ROOT

OPS = ROOT / "ops"
RULES = sorted((OPS / "prometheus" / "rules").glob("*.yml"))
UNIT_TESTS = sorted((OPS / "prometheus" / "tests").glob("*.yml"))
DASHBOARDS = sorted((OPS / "grafana" / "dashboards").glob("*.json"))
REQUIRED_ALERTS = {
    "StuckJobs",
    "NoConsumers",
    "ConsumerLagGrowing",
    "HighFailureRate",
    "AllTokensCooling",
    "DeadLettersGrowing",
    "RedisMemoryHigh",
    "RedisEvictions",
    "IngestDown",
}


def promtool(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed (scripts/test installs Debian's prometheus package)")
    return subprocess.run(
        [binary, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def alert_rules() -> list[tuple[Path, int, int, dict[str, Any]]]:
    """(file, group index, rule index, rule) of every alerting rule."""
    found = []
    for path in RULES:
        for g, group in enumerate(yaml.safe_load(path.read_text())["groups"]):
            for r, rule in enumerate(group["rules"]):
                if "alert" in rule:
                    found.append((path, g, r, rule))
    return found


@pytest.mark.system
def test_rules_and_scrape_config_are_valid() -> None:
    checked = promtool("check", "rules", *RULES)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = promtool("check", "config", OPS / "prometheus" / "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr


@pytest.mark.system
def test_alert_unit_tests_pass() -> None:
    assert UNIT_TESTS
    result = promtool("test", "rules", *UNIT_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(UNIT_TESTS)


def test_every_alert_has_labels_annotations_and_a_runbook_entry() -> None:
    runbook = (OPS / "RUNBOOK.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9-]", "", h.strip().lower().replace(" ", "-"))
        for h in re.findall(r"^## (.+)$", runbook, flags=re.MULTILINE)
    }
    names = set()
    for _path, _g, _r, rule in alert_rules():
        names.add(rule["alert"])
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"], rule["alert"]
        assert annotations["description"], rule["alert"]
        page, _, anchor = annotations["runbook_url"].partition("#")
        assert page == "ops/RUNBOOK.md"
        assert anchor in anchors, f"{rule['alert']}: no '## ' heading for #{anchor} in ops/RUNBOOK.md"
    assert names >= REQUIRED_ALERTS, REQUIRED_ALERTS - names


@pytest.mark.system
@pytest.mark.parametrize(
    "mutation",
    [
        # True wherever the rule is false, unchanged where it is true: only a test that expects
        # silence can notice.
        pytest.param("({expr}) or on() vector(1)", id="always"),
        # Never true: only a test that expects the alert to fire can notice.
        pytest.param("vector(1) < 0", id="never"),
    ],
)
def test_each_alert_has_a_test_that_sees_it_fire_and_one_that_sees_it_silent(
    mutation: str, tmp_path: Path
) -> None:
    """Replace alert expressions by `mutation`: every alert's unit tests must then fail.

    promtool names the alert of each failed assertion, so one run covers every alert; rules that
    share an alert name (StuckJobs has two signals) are mutated in separate runs.
    """
    rules = alert_rules()
    occurrence: dict[str, int] = {}
    rounds: dict[int, list[tuple[Path, int, int, dict[str, Any]]]] = {}
    for entry in rules:
        n = occurrence[entry[3]["alert"]] = occurrence.get(entry[3]["alert"], 0) + 1
        rounds.setdefault(n, []).append(entry)
    (tmp_path / "tests").mkdir()
    for original in UNIT_TESTS:
        shutil.copy(original, tmp_path / "tests" / original.name)
    unnoticed = []
    for mutated in rounds.values():
        docs = {path: yaml.safe_load(path.read_text()) for path in RULES}
        for path, g, r, _rule in mutated:
            rule = docs[path]["groups"][g]["rules"][r]
            rule["expr"] = mutation.format(expr=rule["expr"])
        (tmp_path / "rules").mkdir(exist_ok=True)
        for path, doc in docs.items():
            (tmp_path / "rules" / path.name).write_text(yaml.safe_dump(doc, sort_keys=False))
        result = promtool("test", "rules", *sorted((tmp_path / "tests").glob("*.yml")), cwd=tmp_path)
        failed = set(re.findall(r"alertname: (\w+),", result.stdout + result.stderr))
        unnoticed += [rule["alert"] for _p, _g, _r, rule in mutated if rule["alert"] not in failed]
    assert not unnoticed, f"no unit test notices these alerts being {mutation!r}: {unnoticed}"


def exposed_names() -> set[str]:
    """Every sample name the catalogue, the queue collector and the exporters we rely on expose."""
    names: set[str] = set()
    for family in text_string_to_metric_families(render_latest().decode()):
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names |= {family.name + s for s in ("_bucket", "_sum", "_count")}
        else:
            names.add(family.name)
    return names | set(QUEUE_GAUGES)


def referenced_metrics(expr: str) -> set[str]:
    return set(re.findall(r"\b(ghibli_[a-z_]+)\b", expr))


def test_rules_and_dashboards_only_use_metrics_that_exist() -> None:
    known = exposed_names()
    exprs = [rule["expr"] for _p, _g, _r, rule in alert_rules()]
    for dashboard in DASHBOARDS:
        exprs += [
            t["expr"] for p in json.loads(dashboard.read_text())["panels"] for t in p.get("targets", [])
        ]
    unknown = set().union(*(referenced_metrics(e) for e in exprs)) - known
    assert not unknown, f"queries use metrics nobody exposes: {sorted(unknown)}"


def test_dashboard_panels_use_the_provisioned_datasource() -> None:
    provisioning = yaml.safe_load((OPS / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = provisioning["datasources"][0]["uid"]
    provider = yaml.safe_load((OPS / "grafana/provisioning/dashboards/ghibli.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    assert DASHBOARDS
    for dashboard in DASHBOARDS:
        doc = json.loads(dashboard.read_text())
        assert doc["uid"]
        assert doc["title"]
        panels = [p for p in doc["panels"] if p["type"] != "row"]
        assert len({p["id"] for p in doc["panels"]}) == len(doc["panels"]), "panel ids must be unique"
        for panel in panels:
            assert panel["datasource"]["uid"] == uid, panel["title"]
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == uid
                assert target["expr"].strip(), panel["title"]
