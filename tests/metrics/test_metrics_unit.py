"""controller.metrics without a cluster: label safety, exactly-once counting, series lifecycle."""

from __future__ import annotations

import os
import socket
from dataclasses import replace
from datetime import UTC, datetime

import kopf
import pytest

from alembic_operator import cli
from alembic_operator.controller import metrics as metrics_module
from alembic_operator.controller.metrics import (
    DEFAULT_METRICS_PORT,
    METRICS_PORT_ENV,
    Metrics,
    port_from_env,
)
from alembic_operator.core.conditions import conditions_for_phase
from alembic_operator.core.tallies import LABEL_LIMIT, is_new_outcome, metric_label
from alembic_operator.errors import ApiUnavailable, Forbidden, JobConflict
from alembic_operator.model.reasons import Reason
from alembic_operator.model.status import (
    GateStatus,
    JobStatus,
    LastSucceeded,
    MigrationStatus,
    Phase,
)
from tests.cluster.controlplane import free_port
from tests.metrics.helpers import (
    check_metrics,
    labels,
    of_migration,
    samples,
    scrape,
    without_buckets,
)

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
T1 = datetime(2025, 1, 2, 3, 4, 9, tzinfo=UTC)
NS, NAME, UID = "shop", "schema", "uid-1"


def status(
    phase: Phase | None,
    reason: Reason = Reason.JOB_RUNNING,
    *,
    attempt: int = 1,
    generation: int = 1,
    revision: str | None = None,
    finished: datetime | None = None,
    duration: float | None = None,
    **fields: object,
) -> MigrationStatus:
    conditions = () if phase is None else conditions_for_phase((), phase, reason=reason, now=T0)
    return replace(
        MigrationStatus(
            observed_generation=generation,
            phase=phase,
            conditions=conditions,
            job=JobStatus(name=f"schema-{attempt}", attempt=attempt) if attempt else None,
            attempts=attempt,
            current_revision=revision,
            finished_at=finished,
            duration_seconds=duration,
        ),
        **fields,
    )


RUNNING = status(Phase.RUNNING)
SUCCEEDED = status(
    Phase.SUCCEEDED,
    Reason.APPLIED,
    revision="0009_head",
    finished=T1,
    duration=3.5,
    last_succeeded=LastSucceeded(revision="0009_head", generation=1, finished_at=T1),
)
FAILED = status(Phase.FAILED, Reason.MIGRATION_FAILED, revision="0008", finished=T1, duration=0.7)


def persisted(
    m: Metrics, previous: MigrationStatus, current: MigrationStatus, *, written: bool = True
) -> None:
    m.status_persisted(NS, NAME, uid=UID, previous=previous, current=current, written=written)


def mine(m: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return without_buckets(of_migration(samples(m.exposition().decode()), NAME))


def base(**extra: str) -> frozenset[tuple[str, str]]:
    return labels(namespace=NS, migration=NAME, **extra)


# --- label safety ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "postgresql://app:s3cr%40t@db.example.com:5432/shop",
        "mysql+pymysql://root:hunter22@127.0.0.1/x",
        "password=hunter22",
        "PGPASSWORD: hunter22",
        "user@db.example.com",
        "https://example.com/path",
        '"password": "hunter22"',
    ],
)
def test_label_values_carry_no_url_user_or_password(text: str) -> None:
    value = metric_label(text)
    for forbidden in ("://", "@", "hunter22", "s3cr", ":", "=", " ", '"'):
        assert forbidden not in value, (text, value)


@pytest.mark.parametrize(
    "text", ["shop", "shop-schema.v2", "0009_widen_product_name", "a1b2c3,d4e5f6", "Failed", ""]
)
def test_names_revisions_and_reasons_pass_unchanged(text: str) -> None:
    assert metric_label(text) == text


def test_label_values_are_bounded_and_single_line() -> None:
    value = metric_label("x" * 1000 + "\n\x00")
    assert len(value) == LABEL_LIMIT == 253  # the longest Kubernetes name fits whole
    assert "\n" not in metric_label("a\nb")


def test_long_names_sharing_a_prefix_keep_their_own_series() -> None:
    """Issue 15 rule 12: two names over 128 characters sharing a prefix never merge."""
    first, second = "shop-" + "x" * 195 + "-first", "shop-" + "x" * 195 + "-second"
    m = Metrics()
    for name, uid, current in ((first, "uid-1", SUCCEEDED), (second, "uid-2", FAILED)):
        m.status_persisted(NS, name, uid=uid, previous=RUNNING, current=current, written=True)
    found = samples(m.exposition().decode())
    total = "alembic_operator_migrations_total"
    assert found[(total, labels(namespace=NS, migration=first, result="succeeded"))] == 1
    assert found[(total, labels(namespace=NS, migration=second, result="failed"))] == 1
    m.forget(NS, first, uid="uid-1")
    found = samples(m.exposition().decode())
    assert not of_migration(found, first)
    assert found[(total, labels(namespace=NS, migration=second, result="failed"))] == 1
    info = labels(namespace=NS, migration=second, phase="Failed", revision="0008")
    assert found[("alembic_operator_migration_info", info)] == 1


def test_a_hostile_migration_label_is_defused_in_the_exposition() -> None:
    m = Metrics()
    m.status_persisted(
        "ns",
        "postgresql://u:topsecret@h/db",
        uid="u",
        previous=RUNNING,
        current=replace(FAILED, current_revision="password=topsecret"),
        written=True,
    )
    text = m.exposition().decode()
    assert "topsecret" not in text
    assert "://" not in text
    assert check_metrics(text).returncode == 0


# --- exactly once ------------------------------------------------------------------------------


def test_outcome_transitions() -> None:
    assert is_new_outcome(RUNNING, SUCCEEDED)
    assert is_new_outcome(RUNNING, FAILED)
    assert is_new_outcome(status(None, attempt=0), FAILED)  # e.g. an invalid spec at once
    assert not is_new_outcome(SUCCEEDED, SUCCEEDED)
    assert not is_new_outcome(FAILED, replace(FAILED, message="other words"))  # same outcome
    assert not is_new_outcome(SUCCEEDED, RUNNING)
    assert not is_new_outcome(RUNNING, RUNNING)
    # The next attempt (retry) or generation is a new outcome, even from the same phase.
    assert is_new_outcome(FAILED, replace(FAILED, attempts=2, job=JobStatus("schema-2", None, 2)))
    assert is_new_outcome(FAILED, replace(FAILED, observed_generation=2))


def test_a_success_is_counted_once_with_its_duration() -> None:
    m = Metrics()
    persisted(m, status(None, attempt=0), RUNNING)
    persisted(m, RUNNING, SUCCEEDED)
    persisted(m, SUCCEEDED, SUCCEEDED, written=False)  # re-reconciled, nothing written
    persisted(m, SUCCEEDED, SUCCEEDED)  # re-written (e.g. a status format change): same outcome
    assert mine(m) == {
        ("alembic_operator_migrations_total", base(result="succeeded")): 1,
        ("alembic_operator_migrations_total", base(result="failed")): 0,
        ("alembic_operator_migration_duration_seconds_count", base(result="succeeded")): 1,
        ("alembic_operator_migration_duration_seconds_sum", base(result="succeeded")): 3.5,
        ("alembic_operator_migration_in_progress", base()): 0,
        ("alembic_operator_migration_last_success_timestamp_seconds", base()): T1.timestamp(),
        ("alembic_operator_migration_info", base(phase="Succeeded", revision="0009_head")): 1,
    }


def test_an_unwritten_patch_counts_nothing() -> None:
    m = Metrics()
    persisted(m, RUNNING, FAILED, written=False)
    found = mine(m)
    assert found[("alembic_operator_migrations_total", base(result="failed"))] == 0
    assert not any(name.startswith("alembic_operator_migration_failures") for name, _ in found)


def test_a_failure_is_counted_by_reason() -> None:
    m = Metrics()
    persisted(m, status(None, attempt=0), RUNNING)
    assert mine(m)[("alembic_operator_migration_in_progress", base())] == 1
    assert mine(m)[("alembic_operator_migration_info", base(phase="Running", revision=""))] == 1
    persisted(m, RUNNING, FAILED)
    persisted(m, FAILED, FAILED)
    assert mine(m) == {
        ("alembic_operator_migrations_total", base(result="succeeded")): 0,
        ("alembic_operator_migrations_total", base(result="failed")): 1,
        ("alembic_operator_migration_failures_total", base(reason="MigrationFailed")): 1,
        ("alembic_operator_migration_duration_seconds_count", base(result="failed")): 1,
        ("alembic_operator_migration_duration_seconds_sum", base(result="failed")): 0.7,
        ("alembic_operator_migration_in_progress", base()): 0,
        ("alembic_operator_migration_info", base(phase="Failed", revision="0008")): 1,
    }


def test_a_restart_rebuilds_gauges_and_counts_nothing() -> None:
    m = Metrics()  # a fresh process: the first reconcile finds the outcome in status
    persisted(m, SUCCEEDED, SUCCEEDED, written=False)
    found = mine(m)
    assert found[("alembic_operator_migrations_total", base(result="succeeded"))] == 0
    assert found[("alembic_operator_migration_info", base(phase="Succeeded", revision="0009_head"))]
    assert found[("alembic_operator_migration_last_success_timestamp_seconds", base())] > 0
    assert not any("duration" in name for name, _ in found)


def test_forget_removes_every_series_and_ignores_late_reconciles() -> None:
    m = Metrics()
    persisted(m, RUNNING, FAILED)
    persisted(m, FAILED, replace(RUNNING, attempts=2, job=JobStatus("schema-2", None, 2)))
    persisted(m, RUNNING, SUCCEEDED)
    m.deployment_held(NS, NAME, "web")
    m.deployment_released(NS, NAME, "web", 2.0)
    assert mine(m)
    m.forget(NS, NAME, uid=UID)
    assert mine(m) == {}
    persisted(m, SUCCEEDED, SUCCEEDED, written=False)  # a reconcile that raced with the deletion
    assert mine(m) == {}
    # Recreated under the same name (a new uid): tracked afresh.
    m.status_persisted(NS, NAME, uid="uid-2", previous=RUNNING, current=SUCCEEDED, written=True)
    assert mine(m)[("alembic_operator_migrations_total", base(result="succeeded"))] == 1


def test_a_recreated_migration_does_not_inherit_series() -> None:
    m = Metrics()
    persisted(m, RUNNING, FAILED)
    m.status_persisted(NS, NAME, uid="uid-2", previous=RUNNING, current=SUCCEEDED, written=True)
    found = mine(m)
    assert found[("alembic_operator_migrations_total", base(result="failed"))] == 0
    assert not any("failures" in name for name, _ in found)


# --- the rollout gate --------------------------------------------------------------------------


def test_deployments_held_and_released() -> None:
    m = Metrics()
    m.deployment_held(NS, NAME, "web")
    m.deployment_held(NS, NAME, "web")  # idempotent
    m.deployment_held(NS, NAME, "worker")
    assert mine(m)[("alembic_operator_deployments_held", base())] == 2
    m.deployment_released(NS, NAME, "web", 12.5)
    m.deployment_released(NS, NAME, "web", None)  # released twice: nothing more observed
    m.deployment_released(NS, NAME, "worker")  # measured since it was held
    found = of_migration(samples(m.exposition().decode()), NAME)
    assert found[("alembic_operator_deployments_held", base())] == 0
    assert found[("alembic_operator_deployment_held_seconds_count", base())] == 2
    assert 12.5 <= found[("alembic_operator_deployment_held_seconds_sum", base())] < 20
    assert found[("alembic_operator_deployment_held_seconds_bucket", base(le="30.0"))] == 2
    assert found[("alembic_operator_deployment_held_seconds_bucket", base(le="10.0"))] == 1


def test_held_deployments_are_rebuilt_from_status() -> None:
    m = Metrics()
    gated = replace(RUNNING, gate=GateStatus(held=True, deployments=("web", "worker")))
    persisted(m, gated, gated, written=False)
    assert mine(m)[("alembic_operator_deployments_held", base())] == 2


def test_each_hold_is_observed_once_whoever_reports_the_release() -> None:
    now = [1000.0]
    m = Metrics(clock=lambda: now[0])
    gated = replace(RUNNING, gate=GateStatus(held=False))
    persisted(m, gated, gated, written=False)
    assert mine(m)[("alembic_operator_deployments_held", base())] == 0
    m.deployment_held(NS, NAME, "web")  # the gate pauses it, then writes the status
    held = replace(RUNNING, gate=GateStatus(held=True, deployments=("web",)))
    persisted(m, gated, held)
    now[0] += 42
    released = replace(SUCCEEDED, gate=GateStatus(held=False))
    persisted(m, held, released)  # the stored status releases it ...
    m.deployment_released(NS, NAME, "web")  # ... then the gate unpauses it
    found = of_migration(samples(m.exposition().decode()), NAME)
    assert found[("alembic_operator_deployments_held", base())] == 0
    assert found[("alembic_operator_deployment_held_seconds_count", base())] == 1
    assert found[("alembic_operator_deployment_held_seconds_sum", base())] == 42


def test_module_functions_act_on_the_active_instance() -> None:
    active = metrics_module.start(0)
    try:
        active.deployment_held(NS, NAME, "web")
        active.deployment_released(NS, NAME, "web", 1.0)
        assert mine(active)[("alembic_operator_deployments_held", base())] == 0
        active.forget(NS, NAME)
        assert mine(active) == {}
        assert metrics_module.start(0) is not active  # a fresh registry per start
    finally:
        metrics_module.stop()


# --- operator health ---------------------------------------------------------------------------


def test_reconcile_and_api_errors() -> None:
    m = Metrics()
    m.reconcile_error(ApiUnavailable("get x: 503", status=503))
    m.reconcile_error(Forbidden("get x: 403", status=403))
    m.reconcile_error(ApiUnavailable("connection refused"))
    m.reconcile_error(JobConflict("Job x exists and is not owned by y"))
    m.reconcile_error(RuntimeError("postgresql://u:topsecret@h/db"))
    found = samples(m.exposition().decode())
    assert found[("alembic_operator_reconcile_errors_total", labels(error="ApiUnavailable"))] == 2
    assert found[("alembic_operator_reconcile_errors_total", labels(error="Forbidden"))] == 1
    assert found[("alembic_operator_reconcile_errors_total", labels(error="JobConflict"))] == 1
    assert found[("alembic_operator_reconcile_errors_total", labels(error="Unexpected"))] == 1
    assert found[("alembic_operator_api_errors_total", labels(code="503"))] == 1
    assert found[("alembic_operator_api_errors_total", labels(code="403"))] == 1
    assert found[("alembic_operator_api_errors_total", labels(code="none"))] == 1
    assert "topsecret" not in m.exposition().decode()


# --- serving -----------------------------------------------------------------------------------


def test_port_from_env() -> None:
    assert port_from_env({}) == DEFAULT_METRICS_PORT
    assert port_from_env({METRICS_PORT_ENV: "9100"}) == 9100
    assert port_from_env({METRICS_PORT_ENV: "0"}) == 0
    for bad in ("http", "-1", "70000"):
        with pytest.raises(ValueError, match="not a port number"):
            port_from_env({METRICS_PORT_ENV: bad})


async def test_serves_and_stops() -> None:
    port = free_port()
    m = Metrics()
    m.serve(port)
    try:
        persisted(m, RUNNING, SUCCEEDED)
        assert "alembic_operator_migrations_total" in await scrape(port)
    finally:
        m.close()
    m2 = Metrics()
    m2.serve(port)  # the port is free again after close
    m2.close()


def test_a_busy_port_leaves_the_operator_running(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        active = metrics_module.start(port)
        try:
            assert active is metrics_module.active()
            assert "metrics are not served" in caplog.text
        finally:
            metrics_module.stop()


def test_cli_passes_the_port_to_the_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}
    monkeypatch.setattr(kopf, "run", lambda **kw: seen.update(kw))
    monkeypatch.setattr(kopf, "configure", lambda **kw: None)
    monkeypatch.delenv(METRICS_PORT_ENV, raising=False)
    assert cli.main(["run", "--standalone", "--metrics-port", "9200"]) == 0
    assert os.environ[METRICS_PORT_ENV] == "9200"
    assert seen["standalone"] is True
    monkeypatch.delenv(METRICS_PORT_ENV)
    with pytest.raises(SystemExit):
        cli.main(["run", "--metrics-port", "99999"])
