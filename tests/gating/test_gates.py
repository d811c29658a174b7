"""core/gates.py, table-driven: images, selectors, the rule, the gate after decide, admission."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from lightkube.core.selector import build_selector

from alembic_operator.controller.transport import selector_pairs
from alembic_operator.core.admission import admission_hold
from alembic_operator.core.conditions import conditions_for_phase, find_condition
from alembic_operator.core.gates import (
    apply_gate,
    deployment_query,
    format_held_by,
    parse_held_by,
    release_deleted,
    selector_matches,
    verdict,
)
from alembic_operator.core.images import parse_image, same_version
from alembic_operator.model.actions import (
    Decision,
    DeploymentRef,
    HoldDeployment,
    PostEvent,
    ReleaseDeployment,
)
from alembic_operator.model.migrations import Migration, parse_migration
from alembic_operator.model.observations import ObservedDeployment
from alembic_operator.model.reasons import Reason
from alembic_operator.model.spec import LabelSelector
from alembic_operator.model.status import (
    ConditionType,
    GateStatus,
    LastSucceeded,
    MigrationStatus,
    Phase,
)
from tests.core.bodies import minimal

NOW = datetime(2025, 1, 1, tzinfo=UTC)
IMAGE = "ghcr.io/acme/shop:1.4.2"
GENERATION = 3  # tests.core.bodies.metadata()
NAME = "shop-schema"


def status(
    phase: Phase | None, *, generation: int = GENERATION, image: str = IMAGE
) -> MigrationStatus:
    if phase is None:
        return MigrationStatus()
    reason = {
        Phase.SUCCEEDED: Reason.APPLIED,
        Phase.FAILED: Reason.LOCK_TIMEOUT,
        Phase.RUNNING: Reason.JOB_RUNNING,
    }[phase]
    conditions = conditions_for_phase((), phase, reason=reason, generation=generation, now=NOW)
    return MigrationStatus(
        observed_generation=generation,
        phase=phase,
        conditions=conditions,
        message="lock wait timed out" if phase is Phase.FAILED else None,
        last_succeeded=LastSucceeded(image=image, generation=generation)
        if phase is Phase.SUCCEEDED
        else None,
    )


def gated(
    phase: Phase | None = Phase.SUCCEEDED,
    *,
    gate: dict[str, Any] | None = None,
    image: str | None = IMAGE,
    succeeded_for: str = IMAGE,
    generation: int = GENERATION,
    held: tuple[str, ...] | None = None,
) -> Migration:
    body = minimal(gate=gate or {"deployments": ["web"]}, image=image)
    if image is None:
        body["spec"]["runner"] = {"type": "command", "command": ["alembic", "upgrade", "head"]}
        body["spec"]["runner"]["image"] = IMAGE
    migration = parse_migration(body)
    new = status(phase, generation=generation, image=succeeded_for)
    if held is not None:
        new = replace(new, gate=GateStatus(held=bool(held), deployments=held))
    return replace(migration, status=new)


def dep(
    name: str = "web",
    *,
    images: tuple[str, ...] = (IMAGE,),
    paused: bool = False,
    held_by: tuple[str, ...] = (),
    labels: dict[str, str] | None = None,
) -> ObservedDeployment:
    return ObservedDeployment(
        name=name,
        uid=f"uid-{name}",
        resource_version="7",
        labels=labels or {},
        paused=paused,
        held_by=held_by,
        images=images,
    )


# --- images, annotation, selectors ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "repository", "version"),
    [
        ("nginx", "docker.io/library/nginx", "latest"),
        ("nginx:1.27", "docker.io/library/nginx", "1.27"),
        ("acme/shop:2", "docker.io/acme/shop", "2"),
        ("docker.io/library/nginx:1", "docker.io/library/nginx", "1"),
        ("localhost:5000/shop:3", "localhost:5000/shop", "3"),
        ("registry:5000/a/b", "registry:5000/a/b", "latest"),
        ("reg.example.com:5000/a/b:1.0", "reg.example.com:5000/a/b", "1.0"),
        ("ghcr.io/acme/shop@sha256:abc", "ghcr.io/acme/shop", "sha256:abc"),
        ("ghcr.io/acme/shop:1@sha256:abc", "ghcr.io/acme/shop", "1@sha256:abc"),
    ],
)
def test_parse_image(reference: str, repository: str, version: str) -> None:
    parsed = parse_image(reference)
    assert (parsed.repository, parsed.version) == (repository, version)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("shop:1", "shop:1", True),
        ("shop:1", "shop:2", False),
        ("shop@sha256:aa", "shop@sha256:aa", True),
        ("shop:1@sha256:aa", "shop:1@sha256:bb", False),  # digests decide when both pin one
        ("shop:1@sha256:aa", "shop:1", True),
        ("shop@sha256:aa", "shop:1", False),
        ("shop", "shop:latest", True),
    ],
)
def test_same_version(a: str, b: str, same: bool) -> None:
    assert same_version(parse_image(a), parse_image(b)) is same


@pytest.mark.parametrize(
    ("value", "names", "formatted"),
    [
        (None, (), None),
        ("", (), None),
        ("shop", ("shop",), "shop"),
        (" shop , billing,shop", ("shop", "billing"), "shop,billing"),
    ],
)
def test_held_by_annotation(
    value: str | None, names: tuple[str, ...], formatted: str | None
) -> None:
    assert parse_held_by(value) == names
    assert format_held_by(names) == formatted


SELECTOR = LabelSelector(
    match_labels={"app": "shop"},
    match_expressions=(
        {"key": "tier", "operator": "In", "values": ["web", "worker"]},
        {"key": "canary", "operator": "DoesNotExist"},
    ),
)


@pytest.mark.parametrize(
    ("labels", "matches"),
    [
        ({"app": "shop", "tier": "web"}, True),
        ({"app": "shop", "tier": "worker", "x": "y"}, True),
        ({"app": "shop", "tier": "db"}, False),
        ({"app": "shop"}, False),
        ({"app": "shop", "tier": "web", "canary": "1"}, False),
        ({"app": "billing", "tier": "web"}, False),
    ],
)
def test_selector_matches(labels: dict[str, str], matches: bool) -> None:
    assert selector_matches(SELECTOR, labels) is matches


def test_selector_as_the_apis_label_selector_and_empty_selector() -> None:
    """What the adapter sends as ``labelSelector`` (lightkube encodes the pairs)."""
    assert build_selector(selector_pairs(SELECTOR)) == "app=shop,tier in (web,worker),!canary"
    expressions = (
        {"key": "a", "operator": "NotIn", "values": ["x"]},
        {"key": "b", "operator": "Exists"},
    )
    pairs = selector_pairs(LabelSelector(match_expressions=expressions))
    assert build_selector(pairs) == "a notin (x),b"
    assert not selector_matches(LabelSelector(), {"app": "shop"})


def test_deployment_query_covers_names_selector_and_recorded_holds() -> None:
    m = gated(
        gate={"deployments": ["web"], "selector": {"matchLabels": {"app": "shop"}}}, held=("old",)
    )
    query = deployment_query(m)
    assert query is not None
    assert query.names == ("web", "old")
    assert query.selector is not None
    assert deployment_query(parse_migration(minimal())) is None
    none_mode = gated(gate={"mode": "none", "selector": {"matchLabels": {"a": "b"}}})
    assert deployment_query(none_mode) is None


# --- the rule ----------------------------------------------------------------------------------

RULE_CASES = [
    # (case, migration, deployment images, hold, reason)
    ("succeeded, same image", gated(), (IMAGE,), False, Reason.ROLLOUT_ALLOWED),
    ("never ran", gated(None), (IMAGE,), True, Reason.AWAITING_MIGRATION),
    ("running", gated(Phase.RUNNING), (IMAGE,), True, Reason.AWAITING_MIGRATION),
    ("failed", gated(Phase.FAILED), (IMAGE,), True, Reason.LOCK_TIMEOUT),
    (
        "succeeded for an older generation",
        gated(generation=GENERATION - 1),
        (IMAGE,),
        True,
        Reason.AWAITING_MIGRATION,
    ),
    (
        "failed for an older generation: waiting for the new one",
        gated(Phase.FAILED, generation=GENERATION - 1),
        (IMAGE,),
        True,
        Reason.AWAITING_MIGRATION,
    ),
    ("moving to another tag", gated(), ("ghcr.io/acme/shop:1.5.0",), True, Reason.IMAGE_MISMATCH),
    ("no container of the repository", gated(), ("nginx:1",), True, Reason.IMAGE_MISMATCH),
    (
        "one matching container among others",
        gated(),
        ("envoyproxy/envoy:v1", IMAGE),
        False,
        Reason.ROLLOUT_ALLOWED,
    ),
    (
        "lastSucceeded pins a digest",
        gated(image="ghcr.io/acme/shop@sha256:aa", succeeded_for="ghcr.io/acme/shop@sha256:aa"),
        ("ghcr.io/acme/shop:1.4.2@sha256:aa",),
        False,
        Reason.ROLLOUT_ALLOWED,
    ),
    ("no spec.image: any image", gated(image=None), ("nginx:1",), False, Reason.ROLLOUT_ALLOWED),
]


@pytest.mark.parametrize(
    ("migration", "images", "hold", "reason"),
    [case[1:] for case in RULE_CASES],
    ids=[case[0] for case in RULE_CASES],
)
def test_rule(migration: Migration, images: tuple[str, ...], hold: bool, reason: Reason) -> None:
    result = verdict(migration, migration.status, images)
    assert (result.hold, result.reason) == (hold, reason)
    assert result.failure is (reason is Reason.LOCK_TIMEOUT)


# --- the gate after decide -----------------------------------------------------------------------


def gate(migration: Migration, *deployments: ObservedDeployment) -> Decision:
    return apply_gate(migration, Decision(migration.status), deployments, now=NOW)


def kinds(decision: Decision) -> list[tuple[str, str]]:
    out = []
    for a in decision.actions:
        if isinstance(a, HoldDeployment | ReleaseDeployment):
            out.append((type(a).__name__, a.name))
        elif isinstance(a, PostEvent):
            target = a.deployment.name if a.deployment else "migration"
            out.append((a.reason.value, target))
    return out


def test_holds_a_gated_deployment_while_the_migration_runs() -> None:
    decision = gate(gated(Phase.RUNNING), dep())
    assert decision.holds == (HoldDeployment(dep(), (NAME,)),)
    # Announced on the Deployment only: the migration's status.gate already names it.
    assert kinds(decision)[1:] == [("RolloutHeld", "web")]
    assert not any(e.warning for e in decision.events)
    assert decision.status.gate == GateStatus(held=True, deployments=("web",))
    condition = find_condition(decision.status.conditions, ConditionType.DEPLOYMENTS_HELD)
    assert condition is not None
    assert condition.reason is Reason.AWAITING_MIGRATION
    assert condition.message.startswith("holding 1 Deployment(s)")


def test_an_already_recorded_hold_is_a_no_op() -> None:
    first = gate(gated(Phase.RUNNING), dep())
    again = replace(gated(Phase.RUNNING), status=first.status)
    decision = gate(again, dep(paused=True, held_by=(NAME,)))
    assert decision == Decision(first.status)


def test_failure_warns_once_for_deployments_already_held() -> None:
    held = gate(gated(Phase.RUNNING), dep())
    failed = replace(
        gated(Phase.FAILED),
        status=replace(
            status(Phase.FAILED),
            gate=held.status.gate,
            conditions=(
                *status(Phase.FAILED).conditions,
                *[c for c in held.status.conditions if c.type is ConditionType.DEPLOYMENTS_HELD],
            ),
        ),
    )
    decision = gate(failed, dep(paused=True, held_by=(NAME,)))
    assert decision.holds == ()
    assert [(e.reason, e.warning) for e in decision.events] == [
        (Reason.DEPLOYMENT_HELD, True),
        (Reason.ROLLOUT_HELD, True),
    ]
    assert "failed (LockTimeout)" in decision.events[1].message
    # Once recorded, the same failure reports nothing again.
    settled = replace(failed, status=decision.status)
    assert gate(settled, dep(paused=True, held_by=(NAME,))).events == ()


def test_repauses_a_deployment_it_holds_that_someone_resumed() -> None:
    seen = dep(held_by=(NAME,))
    decision = gate(gated(Phase.RUNNING, held=("web",)), seen)
    assert decision.holds == (HoldDeployment(seen, (NAME,)),)


def test_a_person_paused_deployment_is_left_alone() -> None:
    decision = gate(gated(Phase.RUNNING), dep(paused=True))
    assert decision.actions == ()
    assert decision.status.gate == GateStatus(held=False, deployments=())
    condition = find_condition(decision.status.conditions, ConditionType.DEPLOYMENTS_HELD)
    assert condition is not None
    assert "left alone: web" in condition.message
    released = gate(gated(), dep(paused=True))
    assert released.releases == ()


@pytest.mark.parametrize(
    ("held_by", "remaining", "unpause"),
    [((NAME,), (), True), (("billing", NAME), ("billing",), False)],
)
def test_release_after_success(
    held_by: tuple[str, ...], remaining: tuple[str, ...], unpause: bool
) -> None:
    seen = dep(paused=True, held_by=held_by)
    decision = gate(gated(held=("web",)), seen)
    assert decision.releases == (ReleaseDeployment(seen, remaining, unpause=unpause),)
    assert [(e.reason, e.deployment) for e in decision.events] == [
        (Reason.ROLLOUT_RELEASED, DeploymentRef("web", "uid-web")),
    ]
    assert decision.status.gate == GateStatus(held=False, deployments=())


def test_adds_itself_to_another_migrations_hold() -> None:
    seen = dep(paused=True, held_by=("billing",))
    decision = gate(gated(Phase.RUNNING), seen)
    assert decision.holds == (HoldDeployment(seen, ("billing", NAME)),)


def test_releases_what_is_no_longer_gated_and_mode_none_holds_nothing() -> None:
    # "api" was held, then removed from spec.gate.deployments.
    api = dep("api", paused=True, held_by=(NAME,))
    decision = gate(gated(Phase.RUNNING, held=("api",)), api)
    assert decision.releases == (ReleaseDeployment(api, ()),)
    assert "no longer gates it" in decision.events[-1].message
    none_mode = gated(Phase.RUNNING, gate={"mode": "none", "deployments": ["web"]}, held=("web",))
    web = dep(paused=True, held_by=(NAME,))
    decision = gate(none_mode, web)
    assert decision.releases == (ReleaseDeployment(web, ()),)
    condition = find_condition(decision.status.conditions, ConditionType.DEPLOYMENTS_HELD)
    assert condition is not None
    assert condition.message.startswith("gate.mode is none")


def test_without_a_gate_status_and_conditions_are_untouched() -> None:
    migration = parse_migration(minimal())
    decision = Decision(status(Phase.SUCCEEDED), requeue_after=5.0)
    assert apply_gate(migration, decision, (), now=NOW) is decision


def test_the_condition_names_the_most_pressing_reason() -> None:
    decision = gate(
        gated(),
        dep("web", images=("ghcr.io/acme/shop:2",)),
        dep("api"),
    )
    condition = find_condition(decision.status.conditions, ConditionType.DEPLOYMENTS_HELD)
    assert condition is not None
    assert condition.reason is Reason.IMAGE_MISMATCH
    assert decision.status.gate == GateStatus(held=True, deployments=("web",))


# --- deletion and admission ----------------------------------------------------------------------


def test_release_deleted() -> None:
    web = dep("web", paused=True, held_by=(NAME,))
    both = dep("both", paused=True, held_by=(NAME, "billing"))
    actions = release_deleted(NAME, (web, both, dep("mine", paused=True), dep("free")))
    assert [a for a in actions if isinstance(a, ReleaseDeployment)] == [
        ReleaseDeployment(both, ("billing",), unpause=False),
        ReleaseDeployment(web, ()),
    ]
    assert all(a.deployment is not None for a in actions if isinstance(a, PostEvent))


ADMISSION_CASES = [
    # (case, migrations, deployment, template changed, expected holders)
    ("running migration: patched", [gated(Phase.RUNNING)], dep(), True, (NAME,)),
    ("succeeded for this image: untouched", [gated()], dep(), True, None),
    ("another image: patched", [gated()], dep(images=("ghcr.io/acme/shop:9",)), True, (NAME,)),
    ("template unchanged: untouched", [gated(Phase.RUNNING)], dep(), False, None),
    ("not gated: untouched", [gated(Phase.RUNNING)], dep("other"), True, None),
    ("paused by a person: untouched", [gated(Phase.RUNNING)], dep(paused=True), True, None),
    (
        "already held by it: untouched",
        [gated(Phase.RUNNING)],
        dep(paused=True, held_by=(NAME,)),
        True,
        None,
    ),
    (
        "held by it but resumed in the request: patched",
        [gated(Phase.RUNNING)],
        dep(held_by=(NAME,)),
        True,
        (NAME,),
    ),
    (
        "mode none: untouched",
        [gated(Phase.RUNNING, gate={"mode": "none", "deployments": ["web"]})],
        dep(),
        True,
        None,
    ),
]


@pytest.mark.parametrize(
    ("migrations", "deployment", "changed", "holders"),
    [case[1:] for case in ADMISSION_CASES],
    ids=[case[0] for case in ADMISSION_CASES],
)
def test_admission(
    migrations: list[Migration],
    deployment: ObservedDeployment,
    changed: bool,
    holders: tuple[str, ...] | None,
) -> None:
    hold = admission_hold(migrations, deployment, template_changed=changed)
    assert (hold.held_by if hold else None) == holders
