"""Status transitions shared by the decisions: a phase with its conditions, a finished run.

Pure helpers over :class:`MigrationStatus`; they never decide anything on their own.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from alembic_operator.core.conditions import conditions_for_phase
from alembic_operator.model.reasons import Reason
from alembic_operator.model.status import MigrationStatus, Phase


def with_phase(
    status: MigrationStatus,
    phase: Phase,
    reason: Reason,
    message: str,
    *,
    generation: int,
    now: datetime,
) -> MigrationStatus:
    """``status`` in ``phase``, its kstatus conditions merged (times move only on flips)."""
    conditions = conditions_for_phase(
        status.conditions, phase, reason=reason, message=message, generation=generation, now=now
    )
    return replace(status, phase=phase, conditions=conditions)


def finished(
    status: MigrationStatus,
    phase: Phase,
    reason: Reason,
    message: str,
    *,
    now: datetime,
    generation: int,
) -> MigrationStatus:
    """``status`` ending a run in ``phase``: finish time, duration, observed generation."""
    new = with_phase(status, phase, reason, message, generation=generation, now=now)
    duration = (now - status.started_at).total_seconds() if status.started_at else None
    return replace(
        new,
        message=message,
        finished_at=now,
        duration_seconds=duration,
        observed_generation=generation,
    )
