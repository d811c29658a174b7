"""Builders for the decision tests: migrations, observed Jobs and pods, runner results.

Times are fixed (no clock reads); the defaults describe the common case (our uid, generation 1,
the application image), so a table row names only what it is about.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from alembic_operator.core.decisions import decide
from alembic_operator.core.launches import RETRY_ANNOTATION
from alembic_operator.model.actions import CreateJob, Decision
from alembic_operator.model.migrations import Migration, parse_migration
from alembic_operator.model.observations import (
    Observation,
    ObservedJob,
    ObservedPod,
    SecretState,
    Termination,
)
from alembic_operator.model.reasons import Reason
from alembic_operator.model.results import RunnerResult, encode_result
from alembic_operator.model.status import ConditionStatus, ConditionType, MigrationStatus
from tests.core.bodies import RUNNER_IMAGE, UID, metadata, minimal

T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
APP_IMAGE = "ghcr.io/acme/shop:1.4.2"
JOB_UID = "0b5e8d7c-1111-4a2b-9c3d-aaaaaaaaaaaa"
OTHER_UID = "99999999-2222-4b3c-8d4e-bbbbbbbbbbbb"
# A credential-shaped string that must never reach status, Events or log tails.
LEAKY_URL = "postgresql://u:secret@h/db"
PRESENT = Observation(secret=SecretState.PRESENT)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def migration(
    *,
    generation: int = 1,
    status: MigrationStatus | None = None,
    annotations: Mapping[str, str] | None = None,
    **spec: Any,
) -> Migration:
    """A parsed minimal migration (spec fields in camelCase, as in the CRD)."""
    body = minimal(**spec)
    body["metadata"] = {**metadata(generation=generation), "annotations": dict(annotations or {})}
    parsed = parse_migration(body)
    return replace(parsed, status=status) if status is not None else parsed


def with_status(m: Migration, status: MigrationStatus) -> Migration:
    return replace(m, status=status)


def with_generation(m: Migration, generation: int) -> Migration:
    return replace(m, ref=replace(m.ref, generation=generation))


def retry(m: Migration, token: str) -> Migration:
    """``m`` with the retry annotation set to ``token``."""
    return replace(m, annotations={**m.annotations, RETRY_ANNOTATION: token})


def run(m: Migration, observed: Observation = PRESENT, *, now: datetime = T0) -> Decision:
    return decide(m, observed, now=now, runner_image=RUNNER_IMAGE)


def started(m: Migration, *, now: datetime = T0) -> tuple[Migration, str]:
    """``m`` after the operator created its next Job: (migration with the status, Job name)."""
    decision = run(m, PRESENT, now=now)
    [create] = decision.changes
    assert isinstance(create, CreateJob)
    return with_status(m, decision.status), create.name


def pod(
    name: str = "pod-1",
    *,
    exit_code: int | None = None,
    message: str = "",
    reason: str = "",
    finished: datetime | None = None,
    waiting: str | None = None,
    waiting_message: str | None = None,
    log: str | None = None,
    created: datetime | None = None,
) -> ObservedPod:
    terminated = (
        None
        if exit_code is None
        else Termination(
            exit_code=exit_code,
            reason=reason or ("Completed" if exit_code == 0 else "Error"),
            message=message,
            finished_at=finished,
        )
    )
    return ObservedPod(
        name=name,
        created_at=created,
        terminated=terminated,
        waiting_reason=waiting,
        waiting_message=waiting_message,
        log_tail=log,
    )


def job(
    name: str,
    *pods: ObservedPod,
    uid: str = JOB_UID,
    owner: str | None = UID,
    generation: int | None = 1,
    image: str | None = APP_IMAGE,
    attempt: int | None = 1,
    **state: Any,
) -> ObservedJob:
    """An observed Job (``state``: deleting, complete, failed, failure_reason, ...)."""
    return ObservedJob(
        name=name,
        uid=uid,
        owner_uid=owner,
        generation=generation,
        image=image,
        attempt=attempt,
        pods=pods,
        **state,
    )


def seen(*jobs: ObservedJob, secret: SecretState | None = SecretState.PRESENT) -> Observation:
    return Observation(jobs=jobs, secret=secret)


def result_json(reason: Reason, **fields: Any) -> str:
    """The runner's termination message for ``reason``."""
    return encode_result(RunnerResult(reason=reason, **fields))


def condition_map(
    status: MigrationStatus,
) -> dict[ConditionType, tuple[ConditionStatus, Reason]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


def transition_times(status: MigrationStatus) -> dict[ConditionType, datetime]:
    return {c.type: c.last_transition_time for c in status.conditions}
