"""When the webhook's CA and serving certificate are renewed (core/certificates.py): a table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alembic_operator.core.certificates import (
    CaStep,
    Stored,
    Validity,
    next_check,
    renewal,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)
NAMES = frozenset({"svc.ops.svc", "svc.ops.svc.cluster.local"})


def window(start_days: float, days: float) -> Validity:
    start = T0 + timedelta(days=start_days)
    return Validity(start, start + timedelta(days=days))


CA = window(0, 3650)  # renew_at: day 2433.3
LEAF = window(0, 365)  # renew_at: day 243.3


def stored(**changes: object) -> Stored:
    values: dict[str, object] = {
        "ca": CA,
        "leaf": LEAF,
        "leaf_names": NAMES,
        "leaf_trusted": True,
        **changes,
    }
    return Stored(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("case", "given", "day", "ca", "leaf"),
    [
        ("nothing stored", None, 1, CaStep.REPLACE, True),
        ("no usable CA", stored(ca=None), 1, CaStep.REPLACE, True),
        ("CA expired", stored(), 3651, CaStep.REPLACE, True),
        ("CA not yet valid", stored(ca=window(10, 3650)), 1, CaStep.REPLACE, True),
        ("all valid", stored(), 1, CaStep.KEEP, False),
        ("leaf just before its last third", stored(), 243, CaStep.KEEP, False),
        ("leaf in its last third", stored(), 244, CaStep.KEEP, True),
        ("leaf expired", stored(), 366, CaStep.KEEP, True),
        ("leaf missing", stored(leaf=None), 1, CaStep.KEEP, True),
        ("leaf names other hosts", stored(leaf_names=frozenset({"x"})), 1, CaStep.KEEP, True),
        ("leaf not signed by a trusted CA", stored(leaf_trusted=False), 1, CaStep.KEEP, True),
        ("CA in its last third, leaf fine", stored(leaf=window(2500, 365)), 2500, CaStep.ROTATE, False),  # noqa: E501
        ("CA and leaf due together", stored(leaf=window(2200, 365)), 2500, CaStep.ROTATE, True),
    ],
)  # fmt: skip
def test_renewal(case: str, given: Stored | None, day: float, ca: CaStep, leaf: bool) -> None:
    plan = renewal(given, names=NAMES, now=T0 + timedelta(days=day))
    assert (plan.ca, plan.leaf) == (ca, leaf), case
    assert plan.needed == (ca is not CaStep.KEEP or leaf)
    assert plan.reason


def test_a_third_left_is_the_threshold_for_short_validities_too() -> None:
    short = Validity(T0, T0 + timedelta(seconds=30))
    given = stored(ca=Validity(T0, T0 + timedelta(seconds=300)), leaf=short)
    assert not renewal(given, names=NAMES, now=T0 + timedelta(seconds=19.9)).leaf
    assert renewal(given, names=NAMES, now=T0 + timedelta(seconds=20)).leaf


@pytest.mark.parametrize(
    ("now", "poll", "expected"),
    [
        (T0 + timedelta(days=1), timedelta(seconds=60), timedelta(seconds=60)),  # the poll
        (LEAF.renew_at() - timedelta(seconds=10), timedelta(seconds=60), timedelta(seconds=10)),
        (T0 + timedelta(days=300), timedelta(seconds=60), timedelta(seconds=0.5)),  # overdue
    ],
)
def test_next_check(now: datetime, poll: timedelta, expected: timedelta) -> None:
    found = next_check(stored(), now=now, poll=poll)
    assert abs(found - expected) < timedelta(seconds=0.1)
    assert next_check(None, now=T0, poll=poll) == poll
