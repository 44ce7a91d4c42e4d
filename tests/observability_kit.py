"""A real Prometheus (and redis_exporter) for tests, fed with the files under ops/.

The scrape config keeps the job names of ops/prometheus/prometheus.yml (rules and dashboard
queries use them) with this machine's ports instead of compose service names. Rules are the real
ones; a test may lower thresholds and `for` durations, and every such change must hit exactly one
place in the expression, so a renamed metric or a changed rule fails loudly instead of silently.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.procs import ROOT, free_port, wait_until

OPS = ROOT / "ops"


def need(binary: str) -> str:
    found = shutil.which(binary)
    if found is None:
        raise RuntimeError(f"{binary} is not installed (scripts/test installs it from Debian)")
    return found


@dataclass(frozen=True)
class Tuning:
    """Test values for one alert rule: its `for`, and exact text replacements in its expr."""

    alert: str
    for_: str | None = None
    replace: tuple[tuple[str, str], ...] = ()
    signal: str | None = None  # for alerts with several rules (StuckJobs)


def tuned_rules(target_dir: Path, tunings: list[Tuning]) -> list[Path]:
    target_dir.mkdir(parents=True, exist_ok=True)
    used: set[Tuning] = set()
    written = []
    for source in sorted((OPS / "prometheus" / "rules").glob("*.yml")):
        doc = yaml.safe_load(source.read_text())
        for group in doc["groups"]:
            for rule in group["rules"]:
                for tuning in tunings:
                    if rule.get("alert") != tuning.alert:
                        continue
                    if tuning.signal is not None and rule.get("labels", {}).get("signal") != tuning.signal:
                        continue
                    for old, new in tuning.replace:
                        assert rule["expr"].count(old) == 1, f"{tuning.alert}: {old!r} not once in its expr"
                        rule["expr"] = rule["expr"].replace(old, new)
                    if tuning.for_ is not None:
                        rule["for"] = tuning.for_
                    used.add(tuning)
        path = target_dir / source.name
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        written.append(path)
    assert used == set(tunings), f"tunings for alerts that do not exist: {set(tunings) - used}"
    return written


def scrape_config(
    targets: dict[str, list[str]], rule_files: list[Path], interval: str = "1s"
) -> dict[str, Any]:
    production = yaml.safe_load((OPS / "prometheus" / "prometheus.yml").read_text())
    jobs = [c["job_name"] for c in production["scrape_configs"]]
    assert set(targets) <= set(jobs), (
        f"jobs unknown to ops/prometheus/prometheus.yml: {set(targets) - set(jobs)}"
    )
    return {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": targets[job]}]} for job in jobs if job in targets
        ],
    }


class Prometheus:
    """prometheus (Debian's package) on a free port with its TSDB in a temporary directory."""

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log_path = workdir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Prometheus:
        argv = [
            need("prometheus"),
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=1h",
            "--log.level=warn",
        ]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        wait_until(
            lambda: httpx.get(self.url + "/-/ready", timeout=2).status_code == 200,
            "prometheus",
            60,
            self.proc,
        )
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _get(self, path: str, **params: Any) -> Any:
        response = httpx.get(self.url + path, params=params, timeout=30)
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self._get("/api/v1/query", query=expr)
        assert data["resultType"] == "vector", data
        return list(data["result"])

    def value(self, expr: str) -> float:
        """The single value of an expression that yields one series (0 series fails)."""
        result = self.query(expr)
        assert len(result) == 1, f"{expr}: {result}"
        return float(result[0]["value"][1])

    def query_range(self, expr: str, start: float, end: float, step: str = "2s") -> list[dict[str, Any]]:
        data = self._get("/api/v1/query_range", query=expr, start=start, end=end, step=step)
        return list(data["result"])

    def alerts(self) -> list[dict[str, Any]]:
        return list(self._get("/api/v1/alerts")["alerts"])

    def targets_up(self, job: str) -> int:
        active = self._get("/api/v1/targets")["activeTargets"]
        return sum(1 for t in active if t["labels"]["job"] == job and t["health"] == "up")

    def wait_for_alert(self, name: str, timeout_s: float, **labels: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for alert in self.alerts():
                if (
                    alert["labels"]["alertname"] == name
                    and alert["state"] == "firing"
                    and all(alert["labels"].get(k) == v for k, v in labels.items())
                ):
                    return alert
            time.sleep(0.5)
        raise AssertionError(f"{name} {labels} not firing after {timeout_s} s; alerts: {self.alerts()}")


class RedisExporter:
    """Debian's prometheus-redis-exporter (oliver006/redis_exporter) for one Redis."""

    def __init__(self, redis_url: str, log_path: Path) -> None:
        self.redis_url = redis_url
        self.port = free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> RedisExporter:
        argv = [
            need("prometheus-redis-exporter"),
            f"-redis.addr={self.redis_url}",
            f"-web.listen-address={self.target}",
        ]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://{self.target}/metrics"
        wait_until(lambda: httpx.get(url, timeout=2).status_code == 200, "redis_exporter", 30, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def dashboard_queries(rate_interval: str) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query of every dashboard, with Grafana's $__rate_interval
    replaced the way Grafana would for a short scrape interval."""
    out = []
    for path in sorted((OPS / "grafana" / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                out.append((panel["title"], target["expr"].replace("$__rate_interval", rate_interval)))
    return out
