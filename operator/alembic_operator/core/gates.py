"""The rollout gate: which Deployments a migration holds, and whether each may roll out.

Rule (docs/gating.md): a gated Deployment may roll out only when its migration is ``Succeeded``
for the migration's current generation (``status.observedGeneration == metadata.generation``)
and, when the migration has ``spec.image``, a container of the Deployment whose image repository
equals that image's repository carries the tag/digest the migration last succeeded for
(``status.lastSucceeded.image``). Otherwise it is held.

Holding is ``spec.paused: true`` plus the annotation ``alembic-operator.dev/held-by`` (the
names of the migrations holding it, comma-separated). Releasing drops this migration's name and
unpauses once no holder is left — only Deployments the operator paused: a Deployment paused
without the annotation (by a person) is never touched.

:func:`apply_gate` runs right after :func:`~alembic_operator.core.decisions.decide` on its
decision: it adds the hold/release actions, their Events (on the migration and on the
Deployment), ``status.gate`` and the ``DeploymentsHeld`` condition; :func:`release_deleted`
releases what a deleted migration held. The same rule at admission (Deployments and pods) is
:mod:`alembic_operator.core.admission`; image references are :mod:`alembic_operator.core.images`.
Must not: do I/O, read the clock or import Kubernetes libraries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from alembic_operator.core.conditions import DesiredCondition, find_condition, next_conditions
from alembic_operator.core.images import parse_image, same_version
from alembic_operator.model.actions import (
    Action,
    Decision,
    DeploymentRef,
    HoldDeployment,
    PostEvent,
    ReleaseDeployment,
)
from alembic_operator.model.migrations import Migration
from alembic_operator.model.observations import DeploymentQuery, ObservedDeployment
from alembic_operator.model.reasons import Reason
from alembic_operator.model.spec import GROUP, GateMode, GateSpec, LabelSelector
from alembic_operator.model.status import (
    ConditionStatus,
    ConditionType,
    GateStatus,
    MigrationStatus,
    Phase,
)

HELD_BY_ANNOTATION = f"{GROUP}/held-by"


# --- the held-by annotation ------------------------------------------------------------------


def parse_held_by(value: str | None) -> tuple[str, ...]:
    """The migration names in a held-by annotation (comma-separated, order kept, no repeats)."""
    names = (n.strip() for n in (value or "").split(","))
    return tuple(dict.fromkeys(n for n in names if n))


def format_held_by(names: Sequence[str]) -> str | None:
    """The annotation's value; ``None`` (remove it) when no holder is left."""
    return ",".join(names) or None


# --- which Deployments are gated ---------------------------------------------------------------


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics (an empty selector matches nothing here: see the CRD)."""
    if not selector.match_labels and not selector.match_expressions:
        return False
    if any(labels.get(k) != v for k, v in selector.match_labels.items()):
        return False
    for expression in selector.match_expressions:
        key, operator = str(expression.get("key")), str(expression.get("operator"))
        values = {str(v) for v in expression.get("values") or ()}
        present = key in labels
        ok = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }.get(operator, False)
        if not ok:
            return False
    return True


def is_active(gate: GateSpec | None) -> bool:
    return gate is not None and gate.mode is GateMode.PAUSE


def selects(gate: GateSpec | None, name: str, labels: Mapping[str, str]) -> bool:
    """Whether ``gate`` covers the Deployment ``name`` (by name or selector), in any mode."""
    if gate is None:
        return False
    if name in gate.deployments:
        return True
    return gate.selector is not None and selector_matches(gate.selector, labels)


def deployment_query(migration: Migration) -> DeploymentQuery | None:
    """What to observe: the gated names, the selector, and the ones recorded as held."""
    gate = migration.spec.gate
    held = migration.status.gate.deployments if migration.status.gate else ()
    names = tuple(dict.fromkeys((*(gate.deployments if gate else ()), *held)))
    selector = gate.selector if is_active(gate) and gate is not None else None
    if not names and selector is None:
        return None
    return DeploymentQuery(names=names, selector=selector)


# --- the rule ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """Hold or release one Deployment, and why (``failure``: held because the migration failed)."""

    hold: bool
    reason: Reason
    message: str
    failure: bool = False


def verdict(
    migration: Migration,
    status: MigrationStatus,
    images: Sequence[str],
    *,
    what: str = "Deployment",
) -> Verdict:
    """The rule for one gated Deployment (or pod: ``what``) running ``images``.

    ``status`` is the migration's (new) status.
    """
    name, generation = migration.ref.name, migration.ref.generation
    current = status.observed_generation == generation
    if not (current and status.phase is Phase.SUCCEEDED):
        if current and status.phase is Phase.FAILED:
            ready = find_condition(status.conditions, ConditionType.READY)
            reason = ready.reason if ready is not None else Reason.MIGRATION_FAILED
            detail = f": {status.message}" if status.message else ""
            return Verdict(
                True,
                reason,
                f"migration {name} failed ({reason.value}){detail}; the previous version keeps "
                "serving until a fixed migration succeeds",
                failure=True,
            )
        phase = status.phase.value if status.phase is not None else "not started"
        return Verdict(
            True,
            Reason.AWAITING_MIGRATION,
            f"migration {name} has not succeeded for generation {generation} yet ({phase})",
        )
    image = migration.spec.image
    if not image:
        return Verdict(False, Reason.ROLLOUT_ALLOWED, f"migration {name} succeeded")
    wanted = parse_image(image)
    last = status.last_succeeded.image if status.last_succeeded else None
    if last and parse_image(last).repository == wanted.repository:
        wanted = parse_image(last)
    running = [parse_image(i) for i in images]
    candidates = [i for i in running if i.repository == wanted.repository]
    if any(same_version(i, wanted) for i in candidates):
        return Verdict(
            False,
            Reason.ROLLOUT_ALLOWED,
            f"migration {name} succeeded for {wanted.repository}:{wanted.version}",
        )
    runs = ", ".join(f"{i.repository}:{i.version}" for i in candidates) or "no container of it"
    return Verdict(
        True,
        Reason.IMAGE_MISMATCH,
        f"migration {name} succeeded for {wanted.repository}:{wanted.version}, but the "
        f"{what} runs {runs}; it is held until a migration for its image succeeds",
    )


# --- the gate after decide() ---------------------------------------------------------------------

_REASON_RANK = {Reason.AWAITING_MIGRATION: 1, Reason.IMAGE_MISMATCH: 2}


def apply_gate(
    migration: Migration,
    decision: Decision,
    deployments: Iterable[ObservedDeployment],
    *,
    now: datetime,
) -> Decision:
    """``decision`` plus the gate: hold/release actions, their Events, status and condition."""
    gate, status = migration.spec.gate, decision.status
    me = migration.ref.name
    held: list[tuple[ObservedDeployment, Verdict]] = []
    left_alone: list[str] = []
    actions: list[Action] = []
    for d in sorted(deployments, key=lambda d: d.name):
        ours = me in d.held_by
        if is_active(gate) and selects(gate, d.name, d.labels):
            v = verdict(migration, status, d.images)
            if v.hold:
                if d.paused and not d.held_by:
                    left_alone.append(d.name)  # paused by a person: never touched
                    continue
                if not ours or not d.paused:
                    holders = d.held_by if ours else (*d.held_by, me)
                    actions.append(HoldDeployment(d, holders))
                held.append((d, v))
                continue
        if ours:
            why = (
                f"migration {me} succeeded for what it runs"
                if is_active(gate) and selects(gate, d.name, d.labels)
                else f"migration {me} no longer gates it"
            )
            actions.extend(_release(d, me, how=f" by DatabaseMigration {me}: {why}"))
    actions.extend(_hold_events(migration, held))
    names = tuple(d.name for d, _ in held)
    new_gate = GateStatus(held=bool(names), deployments=names) if gate is not None else None
    conditions = tuple(c for c in status.conditions if c.type is not ConditionType.DEPLOYMENTS_HELD)
    if gate is not None:
        conditions = next_conditions(
            status.conditions,
            (_held_condition(migration, held, left_alone),),
            now=now,
        )
    new = replace(status, gate=new_gate, conditions=conditions)
    if new == status and not actions:
        return decision
    return Decision(new, (*decision.actions, *actions), decision.requeue_after)


def _hold_events(
    migration: Migration, held: Sequence[tuple[ObservedDeployment, Verdict]]
) -> list[PostEvent]:
    """Events for Deployments newly held, and for held ones once their migration failed.

    A hold is announced on the Deployment (where ``kubectl describe`` shows why it does not roll
    out); the migration gets a Warning only when its failure keeps the Deployment held, since its
    ``status.gate`` and ``DeploymentsHeld`` condition already name what it holds.
    """
    previous = migration.status
    before = set(previous.gate.deployments) if previous.gate else set()
    condition = find_condition(previous.conditions, ConditionType.DEPLOYMENTS_HELD)
    events = []
    for d, v in held:
        newly = d.name not in before
        failed_now = v.failure and (condition is None or condition.reason is not v.reason)
        if not (newly or failed_now):
            continue
        if v.failure:
            verb = "holding" if newly else "still holding"
            events.append(
                PostEvent(
                    Reason.DEPLOYMENT_HELD,
                    f"{verb} Deployment {d.name}: {v.message}",
                    warning=True,
                )
            )
        events.append(
            PostEvent(
                Reason.ROLLOUT_HELD,
                f"held by DatabaseMigration {migration.ref.name} (spec.paused): {v.message}",
                warning=v.failure,
                deployment=DeploymentRef(d.name, d.uid),
            )
        )
    return events


def _held_condition(
    migration: Migration,
    held: Sequence[tuple[ObservedDeployment, Verdict]],
    left_alone: Sequence[str],
) -> DesiredCondition:
    generation = migration.ref.generation
    alone = (
        f"; paused by someone else and left alone: {', '.join(left_alone)}" if left_alone else ""
    )
    if not held:
        gate = migration.spec.gate
        message = (
            "gate.mode is none: nothing is held"
            if not is_active(gate)
            else "no gated Deployment is held: they may roll out"
        )
        return DesiredCondition(
            ConditionType.DEPLOYMENTS_HELD,
            ConditionStatus.FALSE,
            Reason.ROLLOUT_ALLOWED,
            message + alone,
            observed_generation=generation,
        )
    verdicts = [v for _, v in held]
    top = min(verdicts, key=lambda v: 0 if v.failure else _REASON_RANK.get(v.reason, 3))
    by_message: dict[str, list[str]] = {}
    for d, v in held:
        by_message.setdefault(v.message, []).append(d.name)
    parts = [f"{', '.join(names)}: {message}" for message, names in by_message.items()]
    return DesiredCondition(
        ConditionType.DEPLOYMENTS_HELD,
        ConditionStatus.TRUE,
        top.reason,
        f"holding {len(held)} Deployment(s) (spec.paused) — " + "; ".join(parts) + alone,
        observed_generation=generation,
    )


# --- deletion ----------------------------------------------------------------------


def release_deleted(name: str, deployments: Iterable[ObservedDeployment]) -> tuple[Action, ...]:
    """Release every Deployment the deleted migration ``name`` held (no finalizer is involved)."""
    actions: list[Action] = []
    for d in sorted(deployments, key=lambda d: d.name):
        if name in d.held_by:
            actions.extend(_release(d, name, how=f": DatabaseMigration {name} was deleted"))
    return tuple(actions)


def _release(d: ObservedDeployment, migration: str, *, how: str) -> tuple[Action, Action]:
    """Release ``d`` from ``migration`` (other holders keep it paused), with its Event.

    The Event goes on the Deployment only: the migration's own status.gate already says it.
    """
    rest = tuple(n for n in d.held_by if n != migration)
    still = f"; still held by {', '.join(rest)}" if rest else ""
    return (
        ReleaseDeployment(d, rest, unpause=not rest),
        PostEvent(
            Reason.ROLLOUT_RELEASED,
            f"released{how}{still}",
            deployment=DeploymentRef(d.name, d.uid),
        ),
    )
