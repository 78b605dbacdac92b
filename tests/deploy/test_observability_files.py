"""deploy/prometheus/ and deploy/grafana/: valid, and built on the metrics the service really exports.

promtool (Debian's `prometheus` package) checks the rules and the scrape example where it
is installed; everywhere, a structural check and a cross-check against faceservice/metrics.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from faceservice import metrics
from tests.conftest import PROJECT_DIR

RULES = PROJECT_DIR / "deploy" / "prometheus" / "alerts.yml"
SCRAPE = PROJECT_DIR / "deploy" / "prometheus" / "scrape.yml"
DASHBOARD = PROJECT_DIR / "deploy" / "grafana" / "faceservice.json"
OPERATIONS = PROJECT_DIR / "docs" / "OPERATIONS.md"
METRIC_NAME = re.compile(r"\bfaceservice_[a-z0-9_]+")
SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


def exported_families() -> set[str]:
    """The families faceservice/metrics.py defines, as Prometheus names them."""
    return {family.name for family in metrics.REGISTRY.collect() if family.name.startswith("faceservice_")}


def family_of(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def alerts() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    return [target["expr"] for panel in json.loads(DASHBOARD.read_text())["panels"] for target in panel["targets"]]


def test_every_alert_has_an_expression_a_severity_and_a_runbook_section():
    rules = alerts()
    assert len(rules) >= 10
    operations = OPERATIONS.read_text().lower()
    for rule in rules:
        assert set(rule) >= {"alert", "expr", "labels", "annotations"}, rule.get("alert")
        assert rule["labels"]["severity"] in {"page", "ticket", "info"}
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        assert f"### {rule['alert'].lower()}" in operations, f"docs/OPERATIONS.md has no section {anchor}"


def test_the_issue_s_alerts_are_there():
    expressions = " ".join(rule["expr"] for rule in alerts())
    for needed in ('status=~"5.."', "histogram_quantile(0.99", "faceservice_index_queue_lag_seconds",
                   "faceservice_webhook_attempts_total", "faceservice_audit_last_verification_ok",
                   "faceservice_anomalies_total"):
        assert needed in expressions, needed


@pytest.mark.parametrize("source", ["rules", "dashboard"])
def test_they_use_only_metrics_the_service_exports(source):
    expressions = [rule["expr"] for rule in alerts()] if source == "rules" else dashboard_expressions()
    used = {family_of(name) for expr in expressions for name in METRIC_NAME.findall(expr)}
    assert used and used <= exported_families(), sorted(used - exported_families())


def test_the_dashboard_is_a_grafana_dashboard():
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] and board["title"] and isinstance(board["schemaVersion"], int)
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["type"] in {"timeseries", "stat", "gauge", "table"}
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"}
        assert panel["datasource"]["uid"] == "${datasource}"
        assert all(target["refId"] and target["expr"] for target in panel["targets"])


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (apt: prometheus)")
def test_promtool_accepts_the_rules_and_the_scrape_example():
    for command in (["check", "rules", str(RULES)], ["check", "config", str(SCRAPE)]):
        result = subprocess.run(["promtool", *command], capture_output=True, text=True, timeout=60,
                                cwd=SCRAPE.parent, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
