"""kstatus conditions (Ready, Reconciling, Stalled): the next list from the previous one.

Role: :func:`next_conditions` merges desired conditions into the previous list the way
``meta.SetStatusCondition`` does: ``lastTransitionTime`` moves only when a condition's
``status`` flips (a new reason or message keeps the time), conditions keep their place, new
ones are appended. :func:`phase_conditions` maps a phase to the three conditions, so every
status the operator writes is a complete kstatus picture:

=================  ===========  ===============  ==========
phase              Ready        Reconciling      Stalled
=================  ===========  ===============  ==========
Pending            False        True             False
Planning           False        True             False
AwaitingApproval   False        True             False
Running            False        True             False
Succeeded          True         False            False
Failed             False        False            True
=================  ===========  ===============  ==========

All three are always present (the abnormal-true ones as ``False`` when they do not apply), so
``kubectl wait --for=condition=Stalled=False`` works too. Reasons come only from :class:`Reason`.

Must not: read the clock (``now`` is a parameter), do I/O, or import Kubernetes libraries.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from alembic_operator.model.reasons import SUCCESS_REASONS, Reason
from alembic_operator.model.status import Condition, ConditionStatus, ConditionType, Phase

_TRUE, _FALSE = ConditionStatus.TRUE, ConditionStatus.FALSE
_IN_PROGRESS = frozenset({Phase.PENDING, Phase.PLANNING, Phase.AWAITING_APPROVAL, Phase.RUNNING})


@dataclass(frozen=True)
class DesiredCondition:
    """A condition as the operator wants it now, before the transition time is settled."""

    type: ConditionType
    status: ConditionStatus
    reason: Reason
    message: str = ""
    observed_generation: int | None = None


def next_conditions(
    previous: Sequence[Condition], desired: Iterable[DesiredCondition], *, now: datetime
) -> tuple[Condition, ...]:
    """The previous conditions with ``desired`` applied; types not in ``desired`` are kept."""
    result = list(previous)
    for want in desired:
        index = next((i for i, c in enumerate(result) if c.type is want.type), None)
        if index is None:
            result.append(_condition(want, since=now))
            continue
        old = result[index]
        since = old.last_transition_time if old.status is want.status else now
        result[index] = _condition(want, since=since)
    return tuple(result)


def _condition(want: DesiredCondition, *, since: datetime) -> Condition:
    return Condition(
        type=want.type,
        status=want.status,
        reason=want.reason,
        message=want.message,
        last_transition_time=since,
        observed_generation=want.observed_generation,
    )


def phase_conditions(
    phase: Phase, *, reason: Reason, message: str = "", generation: int | None = None
) -> tuple[DesiredCondition, ...]:
    """Ready, Reconciling and Stalled for ``phase``; every one carries ``reason``.

    Raises ValueError when the reason contradicts the phase (Succeeded needs a success reason,
    Failed a failure reason, in-progress phases anything but a success), which is a bug in the
    caller rather than a state to record.
    """
    if phase is Phase.SUCCEEDED:
        if reason not in SUCCESS_REASONS:
            raise ValueError(f"phase Succeeded needs a success reason, not {reason.value}")
        ready, reconciling, stalled = _TRUE, _FALSE, _FALSE
    elif phase is Phase.FAILED:
        if reason in SUCCESS_REASONS or reason in (Reason.PENDING, Reason.JOB_RUNNING):
            raise ValueError(f"phase Failed needs a failure reason, not {reason.value}")
        ready, reconciling, stalled = _FALSE, _FALSE, _TRUE
    elif phase in _IN_PROGRESS:
        if reason in SUCCESS_REASONS:
            raise ValueError(f"phase {phase.value} cannot have the success reason {reason.value}")
        ready, reconciling, stalled = _FALSE, _TRUE, _FALSE
    else:  # pragma: no cover - every Phase is handled above
        raise ValueError(f"unknown phase {phase!r}")
    return tuple(
        DesiredCondition(
            type=kind,
            status=status,
            reason=reason,
            message=message,
            observed_generation=generation,
        )
        for kind, status in (
            (ConditionType.READY, ready),
            (ConditionType.RECONCILING, reconciling),
            (ConditionType.STALLED, stalled),
        )
    )


def conditions_for_phase(
    previous: Sequence[Condition],
    phase: Phase,
    *,
    reason: Reason,
    message: str = "",
    generation: int | None = None,
    now: datetime,
) -> tuple[Condition, ...]:
    """:func:`phase_conditions` merged into ``previous`` (the usual one-call form)."""
    desired = phase_conditions(phase, reason=reason, message=message, generation=generation)
    return next_conditions(previous, desired, now=now)


def find_condition(conditions: Iterable[Condition], kind: ConditionType) -> Condition | None:
    return next((c for c in conditions if c.type is kind), None)


def is_ready(conditions: Iterable[Condition], *, generation: int) -> bool:
    """Ready=True and written for ``generation`` (what kstatus and ``kubectl wait`` check)."""
    ready = find_condition(conditions, ConditionType.READY)
    return (
        ready is not None
        and ready.status is _TRUE
        and ready.observed_generation in (None, generation)
    )
