"""Classifies a requested migration before any DDL runs: no-op, upgrade, downgrade or refusal.

Pure functions over the revision graph (built from Alembic's script directory by the runner's
adapter), the database's current revisions and the resolved target. Embedded in the runner's
zipapp: standard library only, no Alembic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from alembic_operator.model.reasons import Reason

UPGRADE = "upgrade"
DOWNGRADE = "downgrade"
NONE = "none"


@dataclass(frozen=True)
class RevisionGraph:
    """Revision ids with their parents (down revisions), in base-to-head order."""

    parents: Mapping[str, tuple[str, ...]]
    order: tuple[str, ...]
    heads: tuple[str, ...]

    def ancestors(self, revisions: Iterable[str]) -> frozenset[str]:
        """``revisions`` and everything below them."""
        seen: set[str] = set()
        stack = [r for r in revisions if r in self.parents]
        while stack:
            rev = stack.pop()
            if rev not in seen:
                seen.add(rev)
                stack.extend(self.parents.get(rev, ()))
        return frozenset(seen)


@dataclass(frozen=True)
class Target:
    """The target as the runner resolved it: ids, or the reason it could not be resolved."""

    spec: str
    revisions: tuple[str, ...] = ()
    problem: Reason | None = None
    detail: str = ""


@dataclass(frozen=True)
class Assessment:
    """What to do: a direction with the revisions involved, or a refusal (``reason``)."""

    reason: Reason
    direction: str = NONE
    to_apply: tuple[str, ...] = ()
    to_undo: tuple[str, ...] = ()
    message: str = ""

    @property
    def is_refusal(self) -> bool:
        return self.reason not in (Reason.APPLIED, Reason.UP_TO_DATE)


def assess(
    graph: RevisionGraph, *, current: tuple[str, ...], target: Target, allow_downgrade: bool
) -> Assessment:
    """Classify in the order the runner contract documents (docs/runner.md)."""
    damaged = version_table_problem(graph, current)
    if damaged is not None:
        return Assessment(Reason.MIGRATION_FAILED, message=damaged)
    if target.problem is None and set(current) == set(target.revisions):
        return Assessment(Reason.UP_TO_DATE, message=f"already at {_show(current)}")
    unknown = [r for r in current if r not in graph.parents]
    if unknown:
        return Assessment(
            Reason.SCHEMA_AHEAD,
            message=(
                f"the database is at {_show(tuple(unknown))}, which this image's migrations do "
                "not contain (the database is ahead of the image)"
            ),
        )
    if target.problem is not None:
        return Assessment(target.problem, message=target.detail)
    below_current = graph.ancestors(current)
    below_target = graph.ancestors(target.revisions)
    to_apply = tuple(r for r in graph.order if r in below_target and r not in below_current)
    if to_apply:
        return Assessment(
            Reason.APPLIED,
            direction=UPGRADE,
            to_apply=to_apply,
            message=f"upgrade {_show(current)} -> {_show(target.revisions)}",
        )
    if target.revisions and set(target.revisions) <= set(current):
        return Assessment(Reason.UP_TO_DATE, message=f"already at {_show(current)}")
    undone = tuple(
        r
        for r in reversed(graph.order)
        if r in below_current and r not in below_target and _descends_from(graph, r, target)
    )
    if not allow_downgrade:
        return Assessment(
            Reason.DOWNGRADE_REFUSED,
            direction=DOWNGRADE,
            to_undo=undone,
            message=(
                f"target {target.spec} is below the database's {_show(current)}: a downgrade "
                f"would undo {_show(undone)}; set allowDowngrade to permit it"
            ),
        )
    return Assessment(
        Reason.APPLIED,
        direction=DOWNGRADE,
        to_undo=undone,
        message=f"downgrade {_show(current)} -> {_show(target.revisions)}",
    )


def version_table_problem(graph: RevisionGraph, current: tuple[str, ...]) -> str | None:
    """Why the version table's rows cannot be right, or None (refused as Alembic does).

    An empty revision id, the same revision twice, or a revision next to its own ancestor:
    no sequence of migrations writes such a table, and none of them is "up to date".
    """
    fix = "check which revision the schema is at and correct the rows (alembic stamp)"
    if any(not r.strip() for r in current):
        return f"the version table holds an empty revision id ({len(current)} row(s)); {fix}"
    repeated = sorted({r for r in current if current.count(r) > 1})
    if repeated:
        return f"the version table holds {_show(tuple(repeated))} more than once; {fix}"
    for revision in current:
        for other in current:
            if other != revision and revision in graph.ancestors([other]):
                return (
                    f"the version table holds {revision} and {other}, but {revision} is an "
                    f"ancestor of {other} (overlapping revisions, which Alembic refuses); {fix}"
                )
    return None


def _descends_from(graph: RevisionGraph, revision: str, target: Target) -> bool:
    if not target.revisions:  # "base": everything descends from it
        return True
    return bool(set(target.revisions) & (graph.ancestors([revision]) - {revision}))


def progress(
    assessment: Assessment, graph: RevisionGraph, *, after: tuple[str, ...]
) -> tuple[tuple[str, ...], str | None]:
    """Revisions applied (or undone) so far, and the first one that was not, given ``after``."""
    below_after = graph.ancestors(after)
    if assessment.direction == UPGRADE:
        done = tuple(r for r in assessment.to_apply if r in below_after)
        missing = [r for r in assessment.to_apply if r not in below_after]
    elif assessment.direction == DOWNGRADE:
        done = tuple(r for r in assessment.to_undo if r not in below_after)
        missing = [r for r in assessment.to_undo if r in below_after]
    else:
        return (), None
    return done, (missing[0] if missing else None)


def is_at_target(
    assessment: Assessment, graph: RevisionGraph, *, after: tuple[str, ...], target: Target
) -> bool:
    """True when the database reached the target: nothing left to apply or undo."""
    _, missing = progress(assessment, graph, after=after)
    return missing is None and set(target.revisions) <= graph.ancestors(after)


def _show(revisions: tuple[str, ...]) -> str:
    return ", ".join(revisions) if revisions else "base"
