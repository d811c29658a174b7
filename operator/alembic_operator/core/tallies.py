"""What the metrics count, as pure rules over the persisted status (no Prometheus here).

:func:`is_new_outcome` decides whether writing a status records a terminal outcome that was not
stored before (the "exactly once" of the outcome counters); :func:`metric_label` makes any text
safe as a label value (redacted, restricted characters, bounded without merging two values).
Must not: import prometheus_client, do I/O or read the clock.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from alembic_operator.core.conditions import find_condition
from alembic_operator.core.names import HASH_LENGTH, MAX_SUBDOMAIN, digest
from alembic_operator.model.status import ConditionStatus, ConditionType, MigrationStatus, Phase
from alembic_operator.redaction import Redactor

TERMINAL_PHASES = frozenset({Phase.SUCCEEDED, Phase.FAILED})
# Every Kubernetes name (a DNS subdomain, <= 253) fits whole: the namespace and migration labels
# are the names themselves, so two migrations never share a series. Prometheus has no limit of
# its own; this one only bounds odd texts (a revision list, an error), and those keep a hash.
LABEL_LIMIT = MAX_SUBDOMAIN
_UNSAFE = re.compile(r"[^A-Za-z0-9._,\-]")
_REDACTOR = Redactor()


def metric_label(text: object) -> str:
    """A label value that can carry no credential: redacted, then restricted to safe chars.

    Kubernetes names, phases, reasons and Alembic revision ids pass unchanged; anything with
    ``://``, ``@``, ``:``, ``=``, spaces or quotes is defused (those characters become ``_``).
    A value over :data:`LABEL_LIMIT` keeps a prefix and a hash of the whole redacted text
    (:func:`~alembic_operator.core.names.bounded`): it cannot merge with another value sharing
    the prefix, and the hash is of text that holds no credential any more.
    """
    redacted = _REDACTOR.redact(str(text))
    cleaned = _UNSAFE.sub("_", redacted)
    if len(cleaned) <= LABEL_LIMIT:
        return cleaned
    return f"{cleaned[: LABEL_LIMIT - HASH_LENGTH - 1]}-{digest(redacted)}"


def outcome_key(status: MigrationStatus) -> tuple[Any, ...] | None:
    """What identifies a terminal outcome in status (``None`` when the phase is not terminal)."""
    if status.phase not in TERMINAL_PHASES:
        return None
    return (
        status.phase,
        status.observed_generation,
        status.job.name if status.job else None,
        status.attempts,
        status.finished_at,
    )


def is_new_outcome(previous: MigrationStatus, new: MigrationStatus) -> bool:
    """Whether writing ``new`` over ``previous`` records a terminal outcome not stored before."""
    key = outcome_key(new)
    return key is not None and key != outcome_key(previous)


def failure_reason(status: MigrationStatus) -> str:
    """The failure reason of a Failed status (Stalled's reason, which every Failed one has)."""
    for kind in (ConditionType.STALLED, ConditionType.READY):
        condition = find_condition(status.conditions, kind)
        if condition is not None:
            return str(condition.reason.value)
    return "Unknown"


def timestamp(value: datetime) -> float:
    return value.timestamp()


def held_since(status: MigrationStatus) -> float | None:
    held = find_condition(status.conditions, ConditionType.DEPLOYMENTS_HELD)
    if held is None or held.status is not ConditionStatus.TRUE:
        return None
    return timestamp(held.last_transition_time)
