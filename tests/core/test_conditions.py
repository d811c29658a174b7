"""kstatus conditions (alembic_operator.core.conditions): transitions and the phase mapping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alembic_operator.core.conditions import (
    DesiredCondition,
    conditions_for_phase,
    find_condition,
    is_ready,
    next_conditions,
    phase_conditions,
)
from alembic_operator.model.reasons import Reason
from alembic_operator.model.status import Condition, ConditionStatus, ConditionType, Phase

T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=5)
TRUE, FALSE, UNKNOWN = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN
READY, RECONCILING, STALLED = ConditionType.READY, ConditionType.RECONCILING, ConditionType.STALLED


def cond(
    kind: ConditionType,
    status: ConditionStatus,
    *,
    reason: Reason = Reason.JOB_RUNNING,
    message: str = "",
    at: datetime = T0,
    generation: int | None = 1,
) -> Condition:
    return Condition(
        type=kind,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=at,
        observed_generation=generation,
    )


def want(
    kind: ConditionType,
    status: ConditionStatus,
    *,
    reason: Reason = Reason.JOB_RUNNING,
    message: str = "",
    generation: int | None = 1,
) -> DesiredCondition:
    return DesiredCondition(
        type=kind, status=status, reason=reason, message=message, observed_generation=generation
    )


@pytest.mark.parametrize(
    ("before", "after", "moves"),
    [
        pytest.param(cond(READY, FALSE), want(READY, FALSE), False, id="unchanged"),
        pytest.param(
            cond(READY, FALSE), want(READY, TRUE, reason=Reason.APPLIED), True, id="false-to-true"
        ),
        pytest.param(
            cond(READY, TRUE, reason=Reason.APPLIED), want(READY, FALSE), True, id="true-to-false"
        ),
        pytest.param(cond(READY, UNKNOWN), want(READY, FALSE), True, id="unknown-to-false"),
        pytest.param(
            cond(READY, FALSE, reason=Reason.JOB_RUNNING),
            want(READY, FALSE, reason=Reason.LOCK_TIMEOUT),
            False,
            id="reason-change-keeps-time",
        ),
        pytest.param(
            cond(READY, FALSE, message="attempt 1"),
            want(READY, FALSE, message="attempt 2"),
            False,
            id="message-change-keeps-time",
        ),
        pytest.param(
            cond(READY, FALSE, generation=1),
            want(READY, FALSE, generation=2),
            False,
            id="generation-change-keeps-time",
        ),
    ],
)
def test_transition_time_moves_only_on_flips(
    before: Condition, after: DesiredCondition, moves: bool
) -> None:
    [result] = next_conditions([before], [after], now=NOW)
    assert result.last_transition_time == (NOW if moves else T0)
    assert (result.status, result.reason, result.message) == (
        after.status,
        after.reason,
        after.message,
    )
    assert result.observed_generation == after.observed_generation


def test_new_conditions_are_appended_at_now_and_others_kept_in_place() -> None:
    previous = [cond(STALLED, FALSE), cond(READY, FALSE)]
    result = next_conditions(previous, [want(RECONCILING, TRUE), want(READY, FALSE)], now=NOW)
    assert [c.type for c in result] == [STALLED, READY, RECONCILING]
    assert result[0] == previous[0]
    assert result[1].last_transition_time == T0
    assert result[2].last_transition_time == NOW


def test_next_conditions_is_idempotent() -> None:
    desired = phase_conditions(Phase.RUNNING, reason=Reason.JOB_RUNNING, generation=2)
    once = next_conditions([], desired, now=T0)
    assert next_conditions(once, desired, now=NOW) == once


@pytest.mark.parametrize(
    ("phase", "reason", "expected"),
    [
        pytest.param(Phase.PENDING, Reason.PENDING, (FALSE, TRUE, FALSE), id="pending"),
        pytest.param(
            Phase.PENDING, Reason.SECRET_NOT_FOUND, (FALSE, TRUE, FALSE), id="secret-missing"
        ),
        pytest.param(Phase.PLANNING, Reason.JOB_RUNNING, (FALSE, TRUE, FALSE), id="planning"),
        pytest.param(
            Phase.AWAITING_APPROVAL, Reason.APPROVAL_PENDING, (FALSE, TRUE, FALSE), id="approval"
        ),
        pytest.param(Phase.RUNNING, Reason.JOB_RUNNING, (FALSE, TRUE, FALSE), id="running"),
        pytest.param(Phase.RUNNING, Reason.LOCK_TIMEOUT, (FALSE, TRUE, FALSE), id="retrying"),
        pytest.param(Phase.SUCCEEDED, Reason.APPLIED, (TRUE, FALSE, FALSE), id="applied"),
        pytest.param(Phase.SUCCEEDED, Reason.UP_TO_DATE, (TRUE, FALSE, FALSE), id="up-to-date"),
        pytest.param(Phase.SUCCEEDED, Reason.PLANNED, (TRUE, FALSE, FALSE), id="dry-run"),
        pytest.param(Phase.FAILED, Reason.MIGRATION_FAILED, (FALSE, FALSE, TRUE), id="failed"),
        pytest.param(Phase.FAILED, Reason.DEADLINE_EXCEEDED, (FALSE, FALSE, TRUE), id="deadline"),
        pytest.param(Phase.FAILED, Reason.JOB_DELETED, (FALSE, FALSE, TRUE), id="job-deleted"),
    ],
)
def test_phase_conditions(
    phase: Phase, reason: Reason, expected: tuple[ConditionStatus, ...]
) -> None:
    desired = phase_conditions(phase, reason=reason, message="m", generation=4)
    assert [d.type for d in desired] == [READY, RECONCILING, STALLED]
    assert tuple(d.status for d in desired) == expected
    assert {d.reason for d in desired} == {reason}
    assert {d.observed_generation for d in desired} == {4}


@pytest.mark.parametrize(
    ("phase", "reason"),
    [
        pytest.param(Phase.SUCCEEDED, Reason.MIGRATION_FAILED, id="succeeded-with-failure"),
        pytest.param(Phase.FAILED, Reason.APPLIED, id="failed-with-success"),
        pytest.param(Phase.FAILED, Reason.JOB_RUNNING, id="failed-while-running"),
        pytest.param(Phase.RUNNING, Reason.APPLIED, id="running-with-success"),
    ],
)
def test_contradictory_phase_and_reason_is_a_bug(phase: Phase, reason: Reason) -> None:
    with pytest.raises(ValueError, match=reason.value):
        phase_conditions(phase, reason=reason)


def test_a_run_from_pending_to_failed_to_succeeded() -> None:
    t1, t2, t3, t4 = (T0 + timedelta(minutes=m) for m in (1, 2, 3, 4))
    pending = conditions_for_phase((), Phase.PENDING, reason=Reason.PENDING, generation=1, now=T0)
    running = conditions_for_phase(
        pending, Phase.RUNNING, reason=Reason.JOB_RUNNING, generation=1, now=t1
    )
    # Nothing flipped: Ready False, Reconciling True, Stalled False since T0.
    assert {c.last_transition_time for c in running} == {T0}
    failed = conditions_for_phase(
        running, Phase.FAILED, reason=Reason.MIGRATION_FAILED, message="boom", generation=1, now=t2
    )
    times = {c.type: c.last_transition_time for c in failed}
    assert times == {READY: T0, RECONCILING: t2, STALLED: t2}
    retried = conditions_for_phase(
        failed, Phase.RUNNING, reason=Reason.JOB_RUNNING, generation=2, now=t3
    )
    assert {c.type: c.last_transition_time for c in retried} == {
        READY: T0,
        RECONCILING: t3,
        STALLED: t3,
    }
    done = conditions_for_phase(
        retried, Phase.SUCCEEDED, reason=Reason.APPLIED, generation=2, now=t4
    )
    assert {c.type: c.last_transition_time for c in done} == {
        READY: t4,
        RECONCILING: t4,
        STALLED: t3,
    }
    assert is_ready(done, generation=2)
    assert not is_ready(done, generation=3)
    assert not is_ready(retried, generation=2)
    stalled = find_condition(failed, STALLED)
    assert stalled is not None and stalled.reason is Reason.MIGRATION_FAILED
    assert stalled.message == "boom"
