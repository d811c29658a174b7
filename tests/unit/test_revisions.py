"""The pure classification of a requested migration (alembic_operator.core.revisions)."""

from __future__ import annotations

import pytest

from alembic_operator.core.revisions import (
    DOWNGRADE,
    NONE,
    UPGRADE,
    RevisionGraph,
    Target,
    assess,
    is_at_target,
    progress,
)
from alembic_operator.model.reasons import Reason

# base - a - b - (c1 | c2) - m - d      (c1, c2 branch from b and merge in m)
GRAPH = RevisionGraph(
    parents={"a": (), "b": ("a",), "c1": ("b",), "c2": ("b",), "m": ("c1", "c2"), "d": ("m",)},
    order=("a", "b", "c1", "c2", "m", "d"),
    heads=("d",),
)


def target(*revisions: str, spec: str | None = None) -> Target:
    return Target(spec or ",".join(revisions) or "base", revisions=revisions)


@pytest.mark.parametrize(
    ("current", "goal", "allow", "reason", "direction", "to_apply", "to_undo"),
    [
        pytest.param(
            (),
            target("d"),
            False,
            Reason.APPLIED,
            UPGRADE,
            ("a", "b", "c1", "c2", "m", "d"),
            (),
            id="fresh-to-head",
        ),
        pytest.param(("d",), target("d"), False, Reason.UP_TO_DATE, NONE, (), (), id="at-head"),
        pytest.param(
            ("b",), target("c1"), False, Reason.APPLIED, UPGRADE, ("c1",), (), id="one-branch"
        ),
        pytest.param(
            ("c1",),
            target("d"),
            False,
            Reason.APPLIED,
            UPGRADE,
            ("c2", "m", "d"),
            (),
            id="other-branch-then-merge",
        ),
        pytest.param(
            ("c1", "c2"),
            target("c1"),
            False,
            Reason.UP_TO_DATE,
            NONE,
            (),
            (),
            id="branch-head-already-there",
        ),
        pytest.param(
            ("d",),
            target("b"),
            False,
            Reason.DOWNGRADE_REFUSED,
            DOWNGRADE,
            (),
            ("d", "m", "c2", "c1"),
            id="downgrade-refused",
        ),
        pytest.param(
            ("d",),
            target("b"),
            True,
            Reason.APPLIED,
            DOWNGRADE,
            (),
            ("d", "m", "c2", "c1"),
            id="downgrade-allowed",
        ),
        pytest.param(
            ("b",),
            target(),
            True,
            Reason.APPLIED,
            DOWNGRADE,
            (),
            ("b", "a"),
            id="downgrade-to-base",
        ),
        pytest.param(
            ("zz",), target("d"), False, Reason.SCHEMA_AHEAD, NONE, (), (), id="schema-ahead"
        ),
        pytest.param(
            ("zz",),
            target("zz"),
            False,
            Reason.UP_TO_DATE,
            NONE,
            (),
            (),
            id="unknown-but-exactly-the-target",
        ),
    ],
)
def test_assess(
    current: tuple[str, ...],
    goal: Target,
    allow: bool,
    reason: Reason,
    direction: str,
    to_apply: tuple[str, ...],
    to_undo: tuple[str, ...],
) -> None:
    got = assess(GRAPH, current=current, target=goal, allow_downgrade=allow)
    assert (got.reason, got.direction, got.to_apply, got.to_undo) == (
        reason,
        direction,
        to_apply,
        to_undo,
    )
    assert got.message


@pytest.mark.parametrize(
    "problem", [Reason.MULTIPLE_HEADS, Reason.REVISION_NOT_FOUND], ids=lambda r: r.value
)
def test_unresolved_target_is_reported_after_schema_ahead(problem: Reason) -> None:
    unresolved = Target("x", problem=problem, detail="why")
    assert assess(GRAPH, current=("b",), target=unresolved, allow_downgrade=False).reason is problem
    ahead = assess(GRAPH, current=("zz",), target=unresolved, allow_downgrade=False)
    assert ahead.reason is Reason.SCHEMA_AHEAD


@pytest.mark.parametrize(
    ("after", "done", "first_missing", "at_target"),
    [
        pytest.param((), (), "a", False, id="nothing-applied"),
        pytest.param(("b",), ("a", "b"), "c1", False, id="stopped-after-b"),
        pytest.param(("c1",), ("a", "b", "c1"), "c2", False, id="stopped-on-a-branch"),
        pytest.param(("d",), ("a", "b", "c1", "c2", "m", "d"), None, True, id="complete"),
    ],
)
def test_progress_of_an_upgrade(
    after: tuple[str, ...], done: tuple[str, ...], first_missing: str | None, at_target: bool
) -> None:
    plan = assess(GRAPH, current=(), target=target("d"), allow_downgrade=False)
    assert progress(plan, GRAPH, after=after) == (done, first_missing)
    assert is_at_target(plan, GRAPH, after=after, target=target("d")) is at_target


def test_progress_of_a_downgrade() -> None:
    plan = assess(GRAPH, current=("d",), target=target("b"), allow_downgrade=True)
    assert progress(plan, GRAPH, after=("m",)) == (("d",), "m")
    assert is_at_target(plan, GRAPH, after=("b",), target=target("b"))


@pytest.mark.parametrize(
    ("current", "goal", "fragment"),
    [
        pytest.param(("d", "m"), target("d"), "m is an ancestor of d", id="head-and-its-parent"),
        pytest.param(("a", "d"), target("d"), "a is an ancestor of d", id="head-and-its-root"),
        pytest.param(("b", "c1"), target("d"), "b is an ancestor of c1", id="below-the-target"),
        pytest.param(("d", "d"), target("d"), "holds d more than once", id="twice-at-target"),
        pytest.param(("b", "b"), target("d"), "holds b more than once", id="twice-below"),
        pytest.param(("",), target("d"), "empty revision id", id="empty-string"),
        pytest.param((" ",), target("d"), "empty revision id", id="blank"),
        pytest.param(("", "d"), target("d"), "empty revision id", id="empty-and-target"),
    ],
)
def test_a_damaged_version_table_is_refused_never_up_to_date(
    current: tuple[str, ...], goal: Target, fragment: str
) -> None:
    got = assess(GRAPH, current=current, target=goal, allow_downgrade=True)
    assert got.reason is Reason.MIGRATION_FAILED
    assert got.is_refusal and got.direction == NONE
    assert fragment in got.message


@pytest.mark.parametrize(
    "current",
    [
        pytest.param(("c1", "c2"), id="two-real-branches"),
        pytest.param(("zz", "d"), id="unknown-left-to-schema-ahead"),
    ],
)
def test_heads_that_do_not_overlap_are_not_damage(current: tuple[str, ...]) -> None:
    got = assess(GRAPH, current=current, target=target("d"), allow_downgrade=False)
    assert got.reason is not Reason.MIGRATION_FAILED
