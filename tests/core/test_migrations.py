"""The typed DatabaseMigration (alembic_operator.model.migrations): parsing and the status patch."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from alembic_operator.model.migrations import Migration, parse_migration
from alembic_operator.model.reasons import Reason
from alembic_operator.model.spec import GateMode, InvalidMigration, LockMode, RunnerType
from alembic_operator.model.status import (
    Condition,
    ConditionStatus,
    ConditionType,
    GateStatus,
    JobStatus,
    LastSucceeded,
    MigrationStatus,
    Phase,
    PlanStatus,
    format_time,
    parse_status,
    status_to_patch,
)
from tests.core.bodies import UID, all_knobs, command_runner, example_bodies, minimal

T0 = datetime(2026, 11, 21, 8, 30, 15, tzinfo=UTC)


@pytest.mark.parametrize(("file", "body"), [pytest.param(f, b, id=f) for f, b in example_bodies()])
def test_examples_parse(file: str, body: dict[str, Any]) -> None:
    migration = parse_migration(body)
    assert migration.ref.name == body["metadata"]["name"]
    assert migration.ref.uid == UID
    assert migration.spec.database.url_secret_ref.key == "url"
    assert migration.status == MigrationStatus()


def test_example_details() -> None:
    examples = {f: parse_migration(b) for f, b in example_bodies()}
    shop = examples["databasemigration.yaml"].spec
    assert shop.database.lock_timeout_seconds == 120
    assert shop.database.session_settings.statement_timeout == "15min"
    assert shop.pod.resources is not None and shop.pod.resources["limits"]["memory"] == "512Mi"
    assert shop.ttl_seconds_after_finished == 86400
    command = examples["databasemigration-command.yaml"].spec
    assert command.runner.type is RunnerType.COMMAND
    assert command.run_image == "ghcr.io/alembic-operator/example-shop:0.1.0"
    assert command.gate is not None and command.gate.mode is GateMode.NONE
    approval = examples["databasemigration-approval.yaml"].spec
    assert approval.approval_required is True
    assert approval.gate is not None and approval.gate.selector is not None
    assert dict(approval.alembic.x_args) == {"tenant": "acme"}


def test_minimal_body_gets_the_crd_defaults() -> None:
    migration = parse_migration(minimal())
    spec = migration.spec
    assert migration.ref.namespace == "shop" and migration.ref.generation == 3
    assert spec.revision == "head"
    assert spec.allow_downgrade is False
    assert spec.database.lock is LockMode.ADVISORY
    assert spec.database.lock_timeout_seconds == 300
    assert spec.alembic.config == "alembic.ini"
    assert spec.alembic.python == "python"
    assert spec.alembic.working_dir is None and spec.alembic.section is None
    assert spec.runner.type is RunnerType.EMBEDDED
    assert spec.approval_required is False and spec.dry_run is False
    assert spec.gate is None
    assert spec.active_deadline_seconds == 3600
    assert spec.backoff_limit == 2
    assert spec.ttl_seconds_after_finished is None
    assert spec.suspend is False
    assert spec.run_image == "ghcr.io/acme/shop:1.4.2"
    assert migration.status.observed_generation == -1
    assert migration.deleting is False


def test_gate_mode_defaults_to_pause() -> None:
    gate = parse_migration(minimal(gate={"deployments": ["web"]})).spec.gate
    assert gate is not None and gate.mode is GateMode.PAUSE and gate.deployments == ("web",)


def test_parsed_values_are_frozen_copies() -> None:
    body = all_knobs()
    migration = parse_migration(body)
    body["spec"]["env"][0]["value"] = "changed"
    assert migration.spec.pod.env[0]["value"] == "INFO"
    with pytest.raises(TypeError):
        migration.spec.pod.env[0]["value"] = "x"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        migration.spec.backoff_limit = 9  # type: ignore[misc]


def test_annotations_and_deletion() -> None:
    body = minimal()
    body["metadata"]["annotations"] = {"alembic-operator.dev/retry": "1"}
    body["metadata"]["deletionTimestamp"] = "2026-11-21T08:00:00Z"
    migration = parse_migration(body)
    assert migration.annotations == {"alembic-operator.dev/retry": "1"}
    assert migration.deleting is True


def _without(path: str) -> dict[str, Any]:
    body = minimal()
    *parents, last = path.split(".")
    node = body
    for name in parents:
        node = node[name]
    del node[last]
    return body


INVALID = [
    pytest.param(_without("metadata.uid"), "metadata.uid is required", id="no-uid"),
    pytest.param(
        _without("metadata.namespace"), "metadata.namespace is required", id="no-namespace"
    ),
    pytest.param(_without("spec"), "spec is required", id="no-spec"),
    pytest.param(_without("spec.database"), "spec.database is required", id="no-database"),
    pytest.param(
        _without("spec.database.urlSecretRef.key"),
        "spec.database.urlSecretRef.key is required",
        id="no-secret-key",
    ),
    pytest.param(_without("spec.image"), "spec.image is required", id="no-image"),
    pytest.param(
        minimal(backoffLimit="2"), "spec.backoffLimit must be of type int", id="string-int"
    ),
    pytest.param(
        minimal(backoffLimit=True), "spec.backoffLimit must be of type int", id="bool-int"
    ),
    pytest.param(minimal(suspend="yes"), "spec.suspend must be of type bool", id="string-bool"),
    pytest.param(
        minimal(database={"urlSecretRef": {"name": "a", "key": "b"}, "lock": "table"}),
        "spec.database.lock must be one of advisory, none",
        id="bad-enum",
    ),
    pytest.param(
        minimal(runner={"type": "command"}),
        "runner.command is required",
        id="command-without-command",
    ),
    pytest.param(
        minimal(image=None, runner={"type": "command", "command": ["alembic"]}),
        "spec.image or spec.runner.image is required",
        id="command-without-image",
    ),
    pytest.param(
        minimal(runner={"command": ["sh"]}),
        "may only be set when runner.type is command",
        id="embedded-with-command",
    ),
    pytest.param(
        minimal(env=[{"name": "DATABASE_URL", "value": "sqlite://"}]),
        "DATABASE_URL is reserved",
        id="reserved-database-url",
    ),
    pytest.param(
        minimal(env=[{"name": "ALEMBIC_OPERATOR_LOCK", "value": "none"}]),
        "ALEMBIC_OPERATOR_LOCK is reserved",
        id="reserved-runner-setting",
    ),
    pytest.param(
        minimal(env=[{"name": "DB_PASSWORD", "value": "hunter2"}]),
        "looks like a credential",
        id="literal-credential",
    ),
    pytest.param(
        minimal(podLabels={"alembic-operator.dev/migration": "other"}),
        "reserved alembic-operator.dev/ prefix",
        id="reserved-label",
    ),
    pytest.param(
        minimal(activeDeadlineSeconds=300),
        "activeDeadlineSeconds must be greater than",
        id="deadline-below-lock-wait",
    ),
    pytest.param(
        minimal(env=["LOG_LEVEL=INFO"]), "spec.env must be a list of objects", id="env-str"
    ),
    pytest.param({**minimal(), "kind": "Job"}, "not a DatabaseMigration", id="wrong-kind"),
]


@pytest.mark.parametrize(("body", "message"), INVALID)
def test_invalid_bodies(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidMigration, match=message):
        parse_migration(body)


def test_deadline_rule_does_not_apply_without_a_lock() -> None:
    body = minimal(
        activeDeadlineSeconds=60,
        database={"urlSecretRef": {"name": "a", "key": "b"}, "lock": "none"},
    )
    assert parse_migration(body).spec.active_deadline_seconds == 60


def test_command_runner_image_falls_back_to_spec_image() -> None:
    spec = parse_migration(minimal(runner={"type": "command", "command": ["alembic"]})).spec
    assert spec.run_image == "ghcr.io/acme/shop:1.4.2"
    assert parse_migration(command_runner()).spec.run_image == "ghcr.io/acme/shop-tools:2.0.0"


# --- status -------------------------------------------------------------------------------------

FULL_STATUS = MigrationStatus(
    observed_generation=3,
    phase=Phase.FAILED,
    conditions=(
        Condition(
            type=ConditionType.READY,
            status=ConditionStatus.FALSE,
            reason=Reason.MIGRATION_FAILED,
            message="revision 0011 failed",
            last_transition_time=T0,
            observed_generation=3,
        ),
    ),
    target_revision="0011_broken",
    from_revision="0009",
    current_revision="0010_good",
    applied_revisions=("0010_good",),
    plan=PlanStatus(
        hash="abc",
        revisions=("0010_good", "0011_broken"),
        direction="upgrade",
        destructive=False,
        sql_config_map="shop-schema-plan",
        generation=3,
    ),
    job=JobStatus(name="shop-schema-470824ce0d", uid="job-uid", attempt=1),
    attempts=2,
    retry_token="7",
    started_at=T0,
    finished_at=T0 + timedelta(seconds=41),
    duration_seconds=41.5,
    message="revision 0011_broken failed",
    log_tail="Traceback ...",
    gate=GateStatus(held=True, deployments=("shop-web",)),
    last_succeeded=LastSucceeded(
        image="ghcr.io/acme/shop:1.4.1", revision="0009", generation=2, finished_at=T0
    ),
)


def test_status_round_trips_through_the_patch() -> None:
    assert parse_status(status_to_patch(FULL_STATUS)) == FULL_STATUS


def test_status_patch_shape() -> None:
    patch = status_to_patch(FULL_STATUS)
    assert patch["observedGeneration"] == 3
    assert patch["phase"] == "Failed"
    assert patch["conditions"] == [
        {
            "type": "Ready",
            "status": "False",
            "reason": "MigrationFailed",
            "message": "revision 0011 failed",
            "lastTransitionTime": "2026-11-21T08:30:15Z",
            "observedGeneration": 3,
        }
    ]
    assert patch["job"] == {"name": "shop-schema-470824ce0d", "uid": "job-uid", "attempt": 1}
    assert patch["finishedAt"] == "2026-11-21T08:30:56Z"
    assert patch["lastSucceeded"]["finishedAt"] == "2026-11-21T08:30:15Z"
    assert patch["plan"]["sqlConfigMap"] == "shop-schema-plan"
    assert "kopf" not in patch


def test_empty_status_patch_clears_every_field() -> None:
    patch = status_to_patch(MigrationStatus())
    assert patch["observedGeneration"] == -1
    assert patch["logTail"] is None and patch["job"] is None and patch["phase"] is None
    assert patch["conditions"] == [] and patch["appliedRevisions"] == []


def test_status_patch_respects_the_crd_limits() -> None:
    status = MigrationStatus(
        log_tail="x" * 10_000 + "END", applied_revisions=tuple(f"r{i}" for i in range(5000))
    )
    patch = status_to_patch(status)
    assert len(patch["logTail"].encode()) <= 4096 and patch["logTail"].endswith("END")
    assert len(patch["appliedRevisions"]) == 4096 and patch["appliedRevisions"][-1] == "r4999"


def test_job_status_drops_unknown_uid() -> None:
    patch = status_to_patch(MigrationStatus(job=JobStatus(name="j")))
    assert patch["job"] == {"name": "j", "attempt": 0}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param({}, MigrationStatus(), id="empty"),
        pytest.param({"phase": "Exploded"}, MigrationStatus(), id="unknown-phase"),
        pytest.param({"attempts": "two"}, MigrationStatus(), id="wrong-type"),
        pytest.param({"observedGeneration": True}, MigrationStatus(), id="bool-is-not-int"),
        pytest.param({"observedGeneration": 0}, MigrationStatus(observed_generation=0), id="zero"),
        pytest.param({"startedAt": "yesterday"}, MigrationStatus(), id="bad-time"),
        pytest.param({"job": {"uid": "x"}}, MigrationStatus(), id="job-without-name"),
        pytest.param(
            {"conditions": [{"type": "Ready", "status": "True", "reason": "SomethingElse"}]},
            MigrationStatus(),
            id="foreign-reason-dropped",
        ),
        pytest.param(
            {"conditions": [{"type": "Healthy", "status": "True", "reason": "Applied"}]},
            MigrationStatus(),
            id="foreign-type-dropped",
        ),
        pytest.param({"kopf": {"progress": {}}}, MigrationStatus(), id="kopf-ignored"),
    ],
)
def test_parse_status_is_lenient(raw: dict[str, Any], expected: MigrationStatus) -> None:
    assert parse_status(raw) == expected


def test_parse_migration_reads_the_status() -> None:
    body = minimal()
    body["status"] = status_to_patch(FULL_STATUS)
    migration: Migration = parse_migration(body)
    assert migration.status == FULL_STATUS


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param(T0, "2026-11-21T08:30:15Z", id="utc"),
        pytest.param(T0.replace(microsecond=999_999), "2026-11-21T08:30:15Z", id="seconds-only"),
        pytest.param(
            datetime(2026, 11, 21, 12, 30, 15, tzinfo=timezone(timedelta(hours=2))),
            "2026-11-21T10:30:15Z",
            id="other-zone",
        ),
    ],
)
def test_format_time(value: datetime, text: str) -> None:
    assert format_time(value) == text


def test_format_time_refuses_naive() -> None:
    with pytest.raises(ValueError, match="naive"):
        format_time(datetime(2026, 1, 1))
