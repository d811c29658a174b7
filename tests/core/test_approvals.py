"""Plans and approval in the pure core: the plan's identity, its ConfigMap, the state machine."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from alembic_operator.core.invocation import RunMode
from alembic_operator.core.jobs import job_name
from alembic_operator.core.plans import (
    APPROVE_ANNOTATION,
    CONFIG_MAP_SQL_BUDGET,
    REJECT_ANNOTATION,
    SQL_CHUNK_BYTES,
    plan_hash,
    plan_sql,
    render_plan,
)
from alembic_operator.model.actions import CreateConfigMap, CreateJob
from alembic_operator.model.reasons import Reason
from alembic_operator.model.results import PlanSummary, RunnerResult, encode_result
from alembic_operator.model.status import Phase
from alembic_operator.runner.settings import RunnerSettings, parse_settings
from tests.core.observations import APP_IMAGE, at, job, migration, pod, run, seen, with_status

SQL = "CREATE TABLE a (id INT);\nCREATE TABLE b (id INT);\n"


def plan_result(
    *,
    revisions: tuple[str, ...] = ("r1", "r2"),
    direction: str = "upgrade",
    sql: str = SQL,
    from_revisions: tuple[str, ...] = (),
) -> RunnerResult:
    return RunnerResult(
        Reason.PLANNED,
        mode="plan",
        target_revision="head",
        from_revisions=from_revisions,
        direction=direction,
        message="plan",
        plan=PlanSummary(
            direction,
            revisions,
            direction == "downgrade",
            hashlib.sha256(sql.encode()).hexdigest(),
            len(sql.encode()),
        ),
    )


def log_of(sql: str) -> str:
    """A plan pod's log: SQL lines behind the prefix, interleaved with stderr log lines."""
    lines = [f"SQL| {line}" for line in sql.splitlines()]
    lines.insert(1, "INFO  [alembic.runtime.migration] Running upgrade -> r1")
    return "\n".join(lines) + "\n" + encode_result(plan_result(sql=sql)) + "\n"


def runner_settings(created: CreateJob) -> RunnerSettings:
    """The settings the embedded runner reads from the Job's container (its flags)."""
    [container] = created.manifest["spec"]["template"]["spec"]["containers"]
    return parse_settings(container["args"], {"DATABASE_URL": "sqlite://"})


def planning(**spec: object):  # type: ignore[no-untyped-def]  # a finished plan Job
    m = migration(approval={"required": True}, **spec)
    first = run(m)
    created = next(a for a in first.actions if isinstance(a, CreateJob))
    m = with_status(m, first.status)
    plan_pod = replace(pod(exit_code=0, message=encode_result(plan_result())), output=log_of(SQL))
    plan_job = replace(job(created.name, plan_pod), mode="plan", complete=True)
    return m, plan_job, first


def test_approval_required_starts_a_plan_job() -> None:
    m, _plan_job, first = planning()
    assert first.status.phase is Phase.PLANNING
    created = next(a for a in first.actions if isinstance(a, CreateJob))
    assert created.name == job_name(
        m.ref.name, uid=m.ref.uid, generation=1, attempt=1, mode=RunMode.PLAN
    )
    settings = runner_settings(created)
    assert (settings.mode, settings.sql_file) == ("plan", "-prefixed")
    assert [e.reason for e in first.events] == [Reason.PLAN_STARTED]


@pytest.mark.parametrize(
    ("spec", "phase", "reason", "event"),
    [
        pytest.param(
            {"approval": {"required": True}},
            Phase.AWAITING_APPROVAL,
            Reason.APPROVAL_PENDING,
            Reason.APPROVAL_PENDING,
            id="approval",
        ),
        pytest.param(
            {"approval": {"required": True}, "dryRun": True},
            Phase.SUCCEEDED,
            Reason.PLANNED,
            Reason.DRY_RUN_PLANNED,
            id="dry-run",
        ),
    ],
)
def test_a_finished_plan_is_recorded(
    spec: dict[str, object], phase: Phase, reason: Reason, event: Reason
) -> None:
    m, plan_job, _ = planning(**{k: v for k, v in spec.items() if k != "approval"})
    decision = run(m, seen(plan_job), now=at(5))
    assert decision.status.phase is phase
    ready = next(c for c in decision.status.conditions if c.type.value == "Ready")
    assert ready.reason is reason
    plan = decision.status.plan
    assert plan is not None and plan.revisions == ("r1", "r2") and plan.from_revision == ""
    config_map = next(a for a in decision.actions if isinstance(a, CreateConfigMap))
    assert config_map.manifest["data"]["sql"] == SQL
    assert config_map.manifest["data"]["hash"] == plan.hash
    assert [e.reason for e in decision.events] == [event]


def test_plan_with_nothing_to_apply_needs_no_approval() -> None:
    m, plan_job, _ = planning()
    empty = replace(
        plan_job,
        pods=(
            replace(
                plan_job.pods[0],
                terminated=replace(
                    plan_job.pods[0].terminated, message=encode_result(plan_result(revisions=()))
                ),
            ),
        ),
    )
    decision = run(m, seen(empty), now=at(5))
    assert decision.status.phase is Phase.SUCCEEDED
    assert decision.status.plan is None


def awaiting(annotations: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    m, plan_job, _ = planning()
    recorded = run(m, seen(plan_job), now=at(5))
    waiting = with_status(m, recorded.status)
    assert recorded.status.plan is not None
    return replace(
        waiting, annotations={**waiting.annotations, **(annotations or {})}
    ), recorded.status.plan.hash


def test_the_right_hash_starts_the_apply_job_pinned_to_the_plan() -> None:
    m, digest = awaiting()
    approved = replace(m, annotations={APPROVE_ANNOTATION: digest})
    decision = run(approved, now=at(10))
    assert decision.status.phase is Phase.RUNNING
    created = next(a for a in decision.actions if isinstance(a, CreateJob))
    settings = runner_settings(created)
    assert (settings.mode, settings.expect_revisions) == ("apply", ())
    assert settings.expect_plan_revisions == ("r1", "r2")
    assert settings.expect_sql_sha256 == hashlib.sha256(SQL.encode()).hexdigest()
    assert decision.status.plan is not None and decision.status.plan.hash == digest


@pytest.mark.parametrize(
    ("key", "value", "phase", "reason"),
    [
        pytest.param(
            APPROVE_ANNOTATION,
            "0" * 16,
            Phase.AWAITING_APPROVAL,
            Reason.APPROVAL_MISMATCH,
            id="wrong-hash",
        ),
        pytest.param(REJECT_ANNOTATION, None, Phase.FAILED, Reason.MIGRATION_FAILED, id="reject"),
    ],
)
def test_other_annotations(key: str, value: str | None, phase: Phase, reason: Reason) -> None:
    m, digest = awaiting()
    m = replace(m, annotations={key: value or digest})
    decision = run(m, now=at(10))
    assert decision.status.phase is phase
    assert not [a for a in decision.actions if isinstance(a, CreateJob)]
    assert [e.reason for e in decision.events] == [reason]
    again = run(with_status(m, decision.status), now=at(11))
    assert again.events == ()  # reported once


def test_nothing_happens_without_an_annotation() -> None:
    m, _ = awaiting()
    decision = run(m, now=at(10))
    assert decision.status == m.status and decision.actions == ()


def test_a_plan_outdated_by_a_moved_database_is_rendered_again() -> None:
    m, digest = awaiting({APPROVE_ANNOTATION: ""})
    m = replace(m, annotations={APPROVE_ANNOTATION: digest})
    applying = run(m, now=at(10))
    m = with_status(m, applying.status)
    apply_job = applying.actions[0]
    assert isinstance(apply_job, CreateJob)
    moved = RunnerResult(Reason.PLAN_OUTDATED, from_revisions=("r0",), message="the database moved")
    outdated = pod(exit_code=17, message=encode_result(moved))
    decision = run(m, seen(job(apply_job.name, outdated, failed=True)), now=at(12))
    assert decision.status.phase is Phase.PENDING and decision.status.plan is None
    assert decision.requeue_after == 0.0
    assert [e.reason for e in decision.events] == [Reason.PLAN_OUTDATED]
    replanned = run(with_status(m, decision.status), now=at(13))
    assert replanned.status.phase is Phase.PLANNING


@pytest.mark.parametrize(
    ("change", "differs"),
    [
        pytest.param({}, False, id="same"),
        pytest.param({"image": "other:2"}, True, id="image"),
        pytest.param({"revision": "r1"}, True, id="target"),
    ],
)
def test_plan_hash_covers_what_the_plan_depends_on(change: dict[str, str], differs: bool) -> None:
    base = migration(approval={"required": True})
    other = migration(approval={"required": True}, **change)
    result = plan_result()
    assert (plan_hash(base, result) != plan_hash(other, result)) is differs
    assert plan_hash(base, result) != plan_hash(base, plan_result(from_revisions=("r0",)))


def test_plan_sql_ignores_interleaved_log_lines() -> None:
    assert plan_sql(log_of(SQL)) == SQL
    assert plan_sql("no sql here\n") == ""


@pytest.mark.parametrize(
    ("lines", "keys"),
    [
        pytest.param(1, {"sql"}, id="inline"),
        pytest.param(
            2 * SQL_CHUNK_BYTES // 100 + 5, {"sql.000", "sql.001", "sql.002"}, id="chunked"
        ),
        pytest.param(CONFIG_MAP_SQL_BUDGET // 100 + 1, {"sqlOmitted"}, id="omitted"),
    ],
)
def test_large_sql_is_chunked_or_omitted_never_cut(lines: int, keys: set[str]) -> None:
    sql = ("é" * 10 + "x" * 79 + "\n") * lines  # 100 bytes a line, multi-byte characters
    output = "".join(f"SQL| {line}\n" for line in sql.splitlines())
    data = render_plan(migration(), plan_result(sql=sql), output=output).config_map["data"]
    sql_keys = {k for k in data if k.startswith("sql") and k not in ("sqlSha256", "sqlBytes")}
    assert sql_keys == keys
    if "sqlOmitted" in keys:
        assert "more than a ConfigMap holds" in data["sqlOmitted"]
    else:
        assert "".join(data[k] for k in sorted(sql_keys)) == sql


def test_a_cut_log_is_reported_as_omitted() -> None:
    result = plan_result(sql=SQL * 3)
    data = render_plan(migration(), result, output=log_of(SQL)).config_map["data"]
    assert "sql" not in data and "log was cut" in data["sqlOmitted"]


DIGEST = "sha256:" + "ab" * 32


def approved_apply(image_id: str | None):  # type: ignore[no-untyped-def]
    """The apply Job an approval starts after a plan pod that reported ``image_id``."""
    m, plan_job, _ = planning()
    plan_pod = replace(plan_job.pods[0], image_id=image_id)
    recorded = run(m, seen(replace(plan_job, pods=(plan_pod,))), now=at(5))
    assert recorded.status.plan is not None
    m = with_status(m, recorded.status)
    m = replace(m, annotations={APPROVE_ANNOTATION: recorded.status.plan.hash})
    applying = run(m, now=at(10))
    created = next(a for a in applying.actions if isinstance(a, CreateJob))
    return with_status(m, applying.status), created


@pytest.mark.parametrize(
    ("image_id", "image"),
    [
        pytest.param(
            f"ghcr.io/acme/shop@{DIGEST}",
            f"ghcr.io/acme/shop@{DIGEST}",
            id="digest",
        ),
        pytest.param(
            # The repository as the runtime spells it; the spec's repository is kept.
            f"docker-pullable://ghcr.io/acme/shop@{DIGEST}",
            f"ghcr.io/acme/shop@{DIGEST}",
            id="docker-pullable",
        ),
        # No repository digest known (a local image, a runtime reporting none): the tag, as
        # before; the runner's plan check still refuses other revisions or SQL.
        pytest.param("sha256:" + "cd" * 32, APP_IMAGE, id="no-digest"),
        pytest.param(None, APP_IMAGE, id="no-image-id"),
    ],
)
def test_the_apply_job_runs_the_image_the_plan_ran(image_id: str | None, image: str) -> None:
    m, created = approved_apply(image_id)
    assert m.status.plan is not None and m.status.plan.image_id == image_id
    [container] = created.manifest["spec"]["template"]["spec"]["containers"]
    assert container["image"] == image
    [init] = created.manifest["spec"]["template"]["spec"]["initContainers"]
    assert init["image"] != image  # the runner image is not pinned to the app's digest


def test_a_pinned_run_records_the_tag_as_last_succeeded() -> None:
    m, created = approved_apply(f"ghcr.io/acme/shop@{DIGEST}")
    applied = RunnerResult(Reason.APPLIED, to_revisions=("r2",), applied_revisions=("r1", "r2"))
    done = job(
        created.name,
        pod(exit_code=0, message=encode_result(applied)),
        image=f"ghcr.io/acme/shop@{DIGEST}",
        complete=True,
    )
    decision = run(m, seen(done), now=at(12))
    assert decision.status.phase is Phase.SUCCEEDED
    assert decision.status.last_succeeded is not None
    assert decision.status.last_succeeded.image == APP_IMAGE


def test_an_image_that_differs_from_the_approved_plan_fails() -> None:
    m, created = approved_apply(None)
    differs = RunnerResult(
        Reason.PLAN_OUTDATED,
        from_revisions=(),
        message="the migration differs from the approved plan: ... not in the approved plan: r3",
    )
    outdated = job(created.name, pod(exit_code=17, message=encode_result(differs)), failed=True)
    decision = run(m, seen(outdated), now=at(12))
    assert decision.status.phase is Phase.FAILED
    stalled = next(c for c in decision.status.conditions if c.type.value == "Stalled")
    assert stalled.reason is Reason.PLAN_OUTDATED
    assert "not in the approved plan: r3" in (decision.status.message or "")
    assert not [a for a in decision.actions if isinstance(a, CreateJob)]
    again = run(with_status(m, decision.status), now=at(13))
    assert not [a for a in again.actions if isinstance(a, CreateJob)]  # permanent


# --- a plan pod whose log cannot be read (issue 15, rule 19) --------------------------------------

UNREADABLE = "read the log of pod ns/p: 500 InternalError: connection refused"


def unreadable(**spec: object):  # type: ignore[no-untyped-def]  # a plan Job whose log is unread
    m, plan_job, _ = planning(**spec)
    [plan_pod] = plan_job.pods
    assert plan_pod.terminated is not None
    ended = replace(plan_pod.terminated, finished_at=at(10))
    lost = replace(plan_pod, output=None, output_error=UNREADABLE, terminated=ended)
    return m, replace(plan_job, pods=(lost,))


@pytest.mark.parametrize(
    ("seconds", "retry"),
    [
        pytest.param(10, 1.0, id="at-once-1s"),
        pytest.param(10 + 40, 10.0, id="after-40s-10s"),
        pytest.param(10 + 299, 30.0, id="just-before-the-deadline-30s"),
    ],
)
def test_an_unreadable_plan_log_is_reported_and_retried(seconds: float, retry: float) -> None:
    m, plan_job = unreadable()
    decision = run(m, seen(plan_job), now=at(seconds))
    assert decision.status.phase is Phase.PLANNING
    assert decision.status.plan is None
    ready = next(c for c in decision.status.conditions if c.type.value == "Ready")
    assert ready.reason is Reason.LOGS_UNREADABLE
    assert UNREADABLE in (decision.status.message or "")
    assert "retrying for up to 300s" in (decision.status.message or "")
    assert [(e.reason, e.warning) for e in decision.events] == [(Reason.LOGS_UNREADABLE, True)]
    assert not any(isinstance(a, CreateConfigMap) for a in decision.actions)
    assert decision.requeue_after == retry
    # The next look finds the same: no status patch, no second Event.
    again = run(with_status(m, decision.status), seen(plan_job), now=at(seconds))
    assert again.status == decision.status and again.actions == ()
    assert again.requeue_after == retry


def test_an_unreadable_plan_log_fails_after_the_deadline() -> None:
    m, plan_job = unreadable()
    waiting = run(m, seen(plan_job), now=at(11))
    decision = run(with_status(m, waiting.status), seen(plan_job), now=at(10 + 300))
    assert decision.status.phase is Phase.FAILED
    ready = next(c for c in decision.status.conditions if c.type.value == "Ready")
    assert ready.reason is Reason.LOGS_UNREADABLE
    assert "gave up after 300s" in (decision.status.message or "")
    assert "alembic-operator.dev/retry" in (decision.status.message or "")
    assert [(e.reason, e.warning) for e in decision.events] == [(Reason.MIGRATION_FAILED, True)]
    assert decision.events[0].message.startswith("LogsUnreadable: ")
    assert decision.requeue_after is None


def test_a_plan_log_readable_again_is_recorded() -> None:
    m, plan_job, _ = planning()
    _, lost = unreadable()
    waiting = run(m, seen(lost), now=at(11))
    decision = run(with_status(m, waiting.status), seen(plan_job), now=at(20))
    assert decision.status.phase is Phase.AWAITING_APPROVAL
    assert [e.reason for e in decision.events] == [Reason.APPROVAL_PENDING]
