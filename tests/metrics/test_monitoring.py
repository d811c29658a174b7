"""The shipped alerts, their promtool unit tests, the runbook anchors and the Grafana dashboard."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from alembic_operator.controller.metrics import Metrics
from alembic_operator.core.conditions import conditions_for_phase
from alembic_operator.errors import ApiUnavailable
from alembic_operator.model.reasons import Reason
from alembic_operator.model.status import GateStatus, LastSucceeded, MigrationStatus, Phase
from tests.conftest import REPO
from tests.metrics.helpers import promtool

MONITORING = REPO / "monitoring"
ALERTS = MONITORING / "alerts.yaml"
RULE_TESTS = sorted((MONITORING / "tests").glob("*.yaml"))
DASHBOARD = MONITORING / "dashboard.json"
RUNBOOK = REPO / "docs" / "runbook.md"
RUNBOOK_URL = "https://github.com/alembic-operator/alembic-operator/blob/main/docs/runbook.md#"
REQUIRED_ALERTS = {
    "MigrationFailed": "critical",
    "MigrationStuck": "warning",
    "RolloutHeldTooLong": "warning",
    "OperatorDown": "critical",
}


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *map(str, args)], capture_output=True, text=True, check=False, cwd=REPO
    )


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub generates for a Markdown file's headings."""
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", markdown, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def exported_names() -> set[str]:
    """Every sample name the operator can export (a Metrics with every series populated)."""
    m = Metrics()
    now = datetime(2025, 1, 1, tzinfo=UTC)
    failed = MigrationStatus(
        phase=Phase.FAILED,
        conditions=conditions_for_phase((), Phase.FAILED, reason=Reason.LOCK_TIMEOUT, now=now),
        finished_at=now,
        duration_seconds=1.0,
        last_succeeded=LastSucceeded(finished_at=now),
        gate=GateStatus(held=True, deployments=("web",)),
    )
    m.status_persisted("ns", "m", uid="u", previous=MigrationStatus(), current=failed, written=True)
    m.deployment_released("ns", "m", "web", 1.0)
    m.reconcile_error(RuntimeError())
    m.reconcile_error(ApiUnavailable("down", status=503))
    text = m.exposition().decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}


# --- alerts ------------------------------------------------------------------------------------


def test_promtool_check_rules() -> None:
    checked = run("check", "rules", ALERTS)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_promtool_unit_tests_pass() -> None:
    assert RULE_TESTS
    tested = run("test", "rules", *RULE_TESTS)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_required_alerts_with_severity_and_annotations() -> None:
    found = {rule["alert"]: rule for rule in alerts()}
    assert set(REQUIRED_ALERTS) <= set(found)
    for name, severity in REQUIRED_ALERTS.items():
        assert found[name]["labels"]["severity"] == severity
    for rule in found.values():
        annotations = rule["annotations"]
        assert annotations["summary"].strip()
        assert annotations["description"].strip()
        assert annotations["runbook_url"].startswith(RUNBOOK_URL)


def test_runbook_urls_point_at_sections_that_exist() -> None:
    anchors = github_anchors(RUNBOOK.read_text())
    for rule in alerts():
        anchor = rule["annotations"]["runbook_url"].removeprefix(RUNBOOK_URL)
        assert anchor == rule["alert"].lower()
        assert anchor in anchors, f"docs/runbook.md has no section for #{anchor}"


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    tests = [t for path in RULE_TESTS for t in yaml.safe_load(path.read_text())["tests"]]
    for rule in alerts():
        cases = [
            case
            for test in tests
            for case in test.get("alert_rule_test", ())
            if case["alertname"] == rule["alert"]
        ]
        assert any(case.get("exp_alerts") for case in cases), f"{rule['alert']} never fires"
        assert any(not case.get("exp_alerts") for case in cases), f"{rule['alert']} never silent"


def test_alerts_use_only_exported_metrics() -> None:
    names = exported_names()
    for rule in alerts():
        for metric in re.findall(r"alembic_operator_\w+", rule["expr"]):
            assert metric in names, (rule["alert"], metric)


# --- the dashboard -----------------------------------------------------------------------------


def dashboard_exprs() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", ())
    ]


def test_dashboard_is_grafana_json_with_the_required_panels() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    titles = {panel["title"] for panel in dashboard["panels"]}
    for wanted in (
        "Migrations by result",
        "Migration duration percentiles",
        "Failures by reason",
        "Held Deployments",
        "In-progress migrations",
    ):
        assert wanted in titles
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "namespace", "migration"} <= variables


def test_dashboard_queries_are_valid_promql_over_exported_metrics(tmp_path: Path) -> None:
    names = exported_names()
    rules = []
    for index, (title, expr) in enumerate(dashboard_exprs()):
        for metric in re.findall(r"alembic_operator_\w+", expr):
            assert metric in names, (title, metric)
        concrete = (
            expr.replace("$__rate_interval", "5m")
            .replace("$__range", "1d")
            .replace("$namespace", ".*")
            .replace("$migration", ".*")
        )
        assert "$" not in concrete, (title, expr)
        rules.append({"record": f"dashboard:panel_{index}", "expr": concrete})
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = run("check", "rules", path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("path", ["scripts/install-promtool.sh"])
def test_install_script_is_executable(path: str) -> None:
    script = REPO / path
    assert script.stat().st_mode & 0o111
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
