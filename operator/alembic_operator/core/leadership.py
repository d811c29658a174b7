"""Leader election on a ``coordination.k8s.io/v1`` Lease: the decisions, pure, time passed in.

One replica holds the Lease and does the controller work; the others wait. The holder renews it
every ``retry_period``; a standby takes it once it has seen the same record (holder, renew time,
transitions) unchanged for the Lease's ``leaseDurationSeconds`` by its *own* clock (the holder's
``renewTime`` is never compared with the local clock, so clock skew between nodes does not
matter). A holder that could not renew for ``renew_deadline`` (shorter than the duration) stops
acting before anyone else may start. A holder that stops cleanly releases the Lease (empty
holder), so a standby takes it at its next look instead of after the duration.

With the defaults (10 s, 7 s, 2 s) a standby takes over at most ~14 s after the holder's last
renewal, i.e. within 15 s of its death.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime, timedelta


@dataclass(frozen=True)
class LeaseTimings:
    duration: float = 10.0  # leaseDurationSeconds written into the Lease
    renew_deadline: float = 7.0  # a holder that has not renewed for this long stops acting
    retry_period: float = 2.0  # how often every replica looks (and the holder renews)

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.duration:
            raise ValueError("need 0 < retry period < renew deadline < lease duration")


@dataclass(frozen=True)
class LeaseRecord:
    """The Lease's spec, typed (``holder`` is empty when released)."""

    holder: str
    duration_seconds: int
    acquire_time: datetime | None
    renew_time: datetime | None
    transitions: int = 0


@dataclass(frozen=True)
class Observed:
    """A replica's memory of the Lease: the record and when it first saw it (its own clock)."""

    record: LeaseRecord | None
    seen_at: datetime


class Step(enum.Enum):
    CREATE = "create"  # no Lease yet: create it, held by us
    RENEW = "renew"  # ours: write a new renew time
    TAKE = "take"  # released, or expired as we observed it: take it over
    WAIT = "wait"  # someone else holds it


@dataclass(frozen=True)
class LeaseDecision:
    step: Step
    write: LeaseRecord | None  # what to write (None for WAIT)


def observe(previous: Observed | None, record: LeaseRecord | None, *, now: datetime) -> Observed:
    """Remember ``record``; ``seen_at`` moves only when the record changed."""
    if previous is not None and previous.record == record:
        return previous
    return Observed(record=record, seen_at=now)


def decide_lease(
    observed: Observed, *, identity: str, now: datetime, timings: LeaseTimings
) -> LeaseDecision:
    """What this replica does with the Lease it just read."""
    record = observed.record
    duration = round(timings.duration)
    if record is None:
        return LeaseDecision(Step.CREATE, LeaseRecord(identity, duration, now, now, 0))
    if record.holder == identity:
        return LeaseDecision(Step.RENEW, replace(record, duration_seconds=duration, renew_time=now))
    expired = now - observed.seen_at >= timedelta(seconds=max(record.duration_seconds, 1))
    if not record.holder or expired:
        taken = LeaseRecord(identity, duration, now, now, record.transitions + 1)
        return LeaseDecision(Step.TAKE, taken)
    return LeaseDecision(Step.WAIT, None)


def still_leading(last_renewed: datetime | None, *, now: datetime, timings: LeaseTimings) -> bool:
    """Whether a holder whose last successful write was at ``last_renewed`` may keep acting."""
    if last_renewed is None:
        return False
    return now - last_renewed < timedelta(seconds=timings.renew_deadline)


def released(record: LeaseRecord, *, now: datetime) -> LeaseRecord:
    """The record a holder writes when it stops: no holder, so a standby takes it at once."""
    return replace(record, holder="", duration_seconds=1, renew_time=now)
