"""Leader election decisions on a Lease (core/leadership.py): pure, time passed in."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from alembic_operator.core.leadership import (
    LeaseRecord,
    LeaseTimings,
    Observed,
    Step,
    decide_lease,
    observe,
    released,
    still_leading,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)
TIMINGS = LeaseTimings(duration=10, renew_deadline=7, retry_period=2)
ME, OTHER = "pod-a", "pod-b"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def held(holder: str, *, renewed: float = 0, transitions: int = 3) -> LeaseRecord:
    return LeaseRecord(holder, 10, at(-100), at(renewed), transitions)


@pytest.mark.parametrize(
    ("case", "record", "seen_at", "now", "step", "transitions"),
    [
        ("no Lease: create it", None, 0, 0, Step.CREATE, 0),
        ("ours: renew", held(ME), 0, 1, Step.RENEW, 3),
        ("ours after a restart, however old: renew", held(ME), 0, 100, Step.RENEW, 3),
        ("another's, fresh: wait", held(OTHER), 0, 5, Step.WAIT, None),
        ("another's, unchanged just under the duration: wait", held(OTHER), 0, 9.9, Step.WAIT, None),  # noqa: E501
        ("another's, unchanged for the duration: take", held(OTHER), 0, 10, Step.TAKE, 4),
        ("released (no holder): take at once", held(""), 0, 0.1, Step.TAKE, 4),
        # The holder's renewTime is far in the past by our clock (skew): only seen_at counts.
        ("another's, skewed clock, seen recently: wait", held(OTHER, renewed=-3600), 5, 6, Step.WAIT, None),  # noqa: E501
    ],
)  # fmt: skip
def test_decide_lease(
    case: str,
    record: LeaseRecord | None,
    seen_at: float,
    now: float,
    step: Step,
    transitions: int | None,
) -> None:
    decision = decide_lease(
        Observed(record, at(seen_at)), identity=ME, now=at(now), timings=TIMINGS
    )
    assert decision.step is step, case
    if transitions is None:
        assert decision.write is None
        return
    assert decision.write is not None
    assert decision.write.holder == ME
    assert decision.write.renew_time == at(now)
    assert decision.write.duration_seconds == 10
    assert decision.write.transitions == transitions


def test_observe_moves_seen_at_only_when_the_record_changes() -> None:
    first = observe(None, held(OTHER), now=at(0))
    assert observe(first, held(OTHER), now=at(5)) is first
    renewed = observe(first, held(OTHER, renewed=2), now=at(6))
    assert renewed.seen_at == at(6)
    # A standby that keeps seeing renewals never takes over.
    decision = decide_lease(renewed, identity=ME, now=at(15), timings=TIMINGS)
    assert decision.step is Step.WAIT


@pytest.mark.parametrize(
    ("last_renewed", "now", "leading"),
    [(None, 0, False), (0, 6.9, True), (0, 7, False), (0, 30, False)],
)
def test_still_leading(last_renewed: float | None, now: float, leading: bool) -> None:
    renewed = at(last_renewed) if last_renewed is not None else None
    assert still_leading(renewed, now=at(now), timings=TIMINGS) is leading


def test_a_holder_stops_acting_before_a_standby_may_take_over() -> None:
    """The renew deadline is shorter than the duration: never two leaders at once."""
    lost = min(
        t / 10 for t in range(0, 300) if not still_leading(at(0), now=at(t / 10), timings=TIMINGS)
    )
    observed = Observed(held(OTHER), at(0))
    taken = min(
        t / 10
        for t in range(0, 300)
        if decide_lease(observed, identity=ME, now=at(t / 10), timings=TIMINGS).step is Step.TAKE
    )
    assert lost < taken
    # A standby that saw the last renewal late still takes over within 15 s of it.
    assert TIMINGS.duration + 2 * TIMINGS.retry_period <= 15


def test_released_lease_has_no_holder() -> None:
    record = released(held(ME), now=at(1))
    assert record.holder == ""
    assert record == replace(held(ME), holder="", duration_seconds=1, renew_time=at(1))


@pytest.mark.parametrize(
    "timings",
    [
        dict(duration=5, renew_deadline=7),
        dict(retry_period=0),
        dict(renew_deadline=1, retry_period=2),
    ],
)
def test_inconsistent_timings_are_refused(timings: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="retry period"):
        LeaseTimings(**timings)
