"""The migration Job (alembic_operator.core.jobs): names, labels and the full manifest.

The manifests are compared with golden YAML files in tests/core/golden/. After an intended
change, regenerate them and review the diff:

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/core -q
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from alembic_operator.core.invocation import RunMode
from alembic_operator.core.jobs import (
    INIT_CONTAINER,
    LABEL_MIGRATION,
    MIGRATE_CONTAINER,
    build_job,
    job_name,
    label_value,
    succeeded_job_expired,
)
from alembic_operator.model.migrations import parse_migration
from alembic_operator.model.reasons import PERMANENT_EXIT_CODES, RETRYABLE_EXIT_CODES
from alembic_operator.runner.settings import parse_settings
from tests.core.bodies import (
    RUNNER_IMAGE,
    UID,
    all_knobs,
    command_runner,
    example_bodies,
    metadata,
    minimal,
)

GOLDEN = Path(__file__).parent / "golden"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LONG = "a" * 70  # longer than a Job name may be
UID2 = "0b6e1d3a-8f2c-4e7d-b1a9-5c4d3e2f1a00"


def job_for(body: dict[str, Any], *, attempt: int = 0, mode: RunMode = RunMode.APPLY) -> Any:
    return build_job(parse_migration(body), runner_image=RUNNER_IMAGE, attempt=attempt, mode=mode)


def containers(job: dict[str, Any]) -> list[dict[str, Any]]:
    pod = job["spec"]["template"]["spec"]
    return [*pod.get("initContainers", []), *pod["containers"]]


def main_container(job: dict[str, Any]) -> dict[str, Any]:
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["name"] == MIGRATE_CONTAINER
    return container  # type: ignore[no-any-return]


# --- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("s", id="one-char"),
        pytest.param("shop-schema", id="short"),
        pytest.param("x" * 52, id="exactly-fits"),
        pytest.param("x" * 63, id="63-chars"),
        pytest.param(LONG, id="70-chars"),
        pytest.param("a" * 52 + "-" + "b" * 17, id="cut-at-hyphen"),
        pytest.param("shop.schema.v2", id="dots"),
        pytest.param(("shop." * 50)[:253], id="253-char-subdomain"),
    ],
)
@pytest.mark.parametrize("mode", [pytest.param(m, id=m.value) for m in RunMode])
def test_job_name_is_a_stable_dns_label(name: str, mode: RunMode) -> None:
    first = job_name(name, uid=UID, generation=3, attempt=1, mode=mode)
    assert first == job_name(name, uid=UID, generation=3, attempt=1, mode=mode)
    assert len(first) <= 63
    assert DNS_LABEL.match(first), first


def test_job_name_keeps_a_short_name_readable() -> None:
    assert re.fullmatch(
        r"shop-schema-[0-9a-f]{10}", job_name("shop-schema", uid=UID, generation=1, attempt=0)
    )
    assert re.fullmatch(
        r"shop-schema-plan-[0-9a-f]{10}",
        job_name("shop-schema", uid=UID, generation=1, attempt=0, mode=RunMode.PLAN),
    )


@pytest.mark.parametrize(
    ("left", "right"),
    [
        pytest.param((LONG, UID, 1, 0), (LONG[:-1] + "b", UID2, 1, 0), id="70-chars-same-prefix"),
        pytest.param((LONG, UID, 1, 0), (LONG, UID2, 1, 0), id="recreated-namesake"),
        pytest.param((LONG, UID, 1, 0), (LONG, UID, 2, 0), id="next-generation"),
        pytest.param((LONG, UID, 1, 0), (LONG, UID, 1, 1), id="next-attempt"),
        pytest.param(("shop", UID, 1, 0), ("shop", UID, 1, 1), id="short-next-attempt"),
    ],
)
def test_job_names_never_collide(
    left: tuple[str, str, int, int], right: tuple[str, str, int, int]
) -> None:
    def name(args: tuple[str, str, int, int]) -> str:
        return job_name(args[0], uid=args[1], generation=args[2], attempt=args[3])

    assert name(left) != name(right)


def test_job_names_of_long_same_prefix_migrations_are_all_distinct() -> None:
    names = {
        job_name(LONG + str(i), uid=f"uid-{i}", generation=g, attempt=a)
        for i in range(20)
        for g in range(1, 4)
        for a in range(5)
    }
    assert len(names) == 20 * 3 * 5


def test_plan_and_apply_jobs_of_one_attempt_differ() -> None:
    apply = job_name("shop", uid=UID, generation=1, attempt=0)
    assert apply != job_name("shop", uid=UID, generation=1, attempt=0, mode=RunMode.PLAN)


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        pytest.param("shop-schema", True, id="short"),
        pytest.param("shop.schema", True, id="dots"),
        pytest.param("x" * 63, True, id="63-chars"),
        pytest.param("x" * 64, False, id="64-chars"),
        pytest.param(("shop." * 50)[:253], False, id="253-chars"),
    ],
)
def test_label_value(text: str, kept: bool) -> None:
    value = label_value(text)
    assert (value == text) is kept
    assert len(value) <= 63
    assert LABEL_VALUE.match(value)
    assert label_value(text + "z") != value or kept


# --- golden manifests -------------------------------------------------------------------------

GOLDEN_CASES = [
    pytest.param("embedded-default", minimal(), RunMode.APPLY, id="embedded-default"),
    pytest.param("embedded-plan", minimal(), RunMode.PLAN, id="embedded-plan"),
    pytest.param("command-runner", command_runner(), RunMode.APPLY, id="command-runner"),
    pytest.param("all-pod-knobs", all_knobs(), RunMode.APPLY, id="all-pod-knobs"),
]


@pytest.mark.parametrize(("name", "body", "mode"), GOLDEN_CASES)
def test_job_manifest_matches_golden(name: str, body: dict[str, Any], mode: RunMode) -> None:
    text = yaml.safe_dump(job_for(body, attempt=1, mode=mode), sort_keys=False, width=100)
    path = GOLDEN / f"{name}.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run with UPDATE_GOLDEN=1"
    assert path.read_text() == text


ALL_BODIES = [
    pytest.param(minimal(), id="embedded-default"),
    pytest.param(command_runner(), id="command-runner"),
    pytest.param(all_knobs(), id="all-pod-knobs"),
    *(pytest.param(body, id=f"example-{file}") for file, body in example_bodies()),
]


@pytest.mark.parametrize("body", ALL_BODIES)
def test_no_literal_url_anywhere(body: dict[str, Any]) -> None:
    job = job_for(body)
    assert "://" not in yaml.safe_dump(job)
    for container in containers(job):
        for env in container.get("env", []):
            assert "://" not in env.get("value", ""), env


@pytest.mark.parametrize("body", ALL_BODIES)
def test_database_url_comes_from_the_secret_only(body: dict[str, Any]) -> None:
    env = main_container(job_for(body))["env"]
    [url] = [e for e in env if e["name"] == "DATABASE_URL"]
    ref = body["spec"]["database"]["urlSecretRef"]
    assert url == {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": dict(ref)}}
    assert env[0] is url  # ours first: nothing the user adds can come before it


@pytest.mark.parametrize("body", ALL_BODIES)
def test_restricted_pod_security(body: dict[str, Any]) -> None:
    job = job_for(body)
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert {"name": "tmp", "emptyDir": {}} in pod["volumes"]
    for container in containers(job):
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["readOnlyRootFilesystem"] is True
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
        assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_pod_failure_policy_uses_the_runners_exit_codes() -> None:
    rules = job_for(minimal())["spec"]["podFailurePolicy"]["rules"]
    by_action = {r["action"]: r for r in rules}
    assert by_action["FailJob"]["onExitCodes"] == {
        "containerName": MIGRATE_CONTAINER,
        "operator": "In",
        "values": list(PERMANENT_EXIT_CODES),
    }
    assert by_action["Count"]["onExitCodes"]["values"] == list(RETRYABLE_EXIT_CODES)
    assert by_action["Ignore"]["onPodConditions"] == [
        {"type": "DisruptionTarget", "status": "True"}
    ]
    assert not set(PERMANENT_EXIT_CODES) & set(RETRYABLE_EXIT_CODES)


def test_command_runner_counts_every_failure() -> None:
    rules = job_for(command_runner())["spec"]["podFailurePolicy"]["rules"]
    assert [r["action"] for r in rules] == ["Ignore"]


def test_job_spec_knobs() -> None:
    job = job_for(all_knobs(), attempt=2)
    spec = job["spec"]
    assert spec["backoffLimit"] == 4
    assert spec["activeDeadlineSeconds"] == 1800
    assert spec["suspend"] is False
    assert "ttlSecondsAfterFinished" not in spec  # the operator deletes succeeded Jobs itself
    assert "selector" not in spec  # generated by the Job controller


def test_owner_reference_and_labels() -> None:
    job = job_for(minimal(), attempt=2)
    [owner] = job["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "alembic-operator.dev/v1alpha1",
        "kind": "DatabaseMigration",
        "name": "shop-schema",
        "uid": UID,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    labels = job["metadata"]["labels"]
    assert labels[LABEL_MIGRATION] == "shop-schema"
    assert labels["alembic-operator.dev/migration-uid"] == UID
    assert labels["alembic-operator.dev/generation"] == "3"
    assert labels["alembic-operator.dev/attempt"] == "2"
    assert labels["app.kubernetes.io/managed-by"] == "alembic-operator"
    assert job["spec"]["template"]["metadata"]["labels"] == labels
    assert job["metadata"]["name"] == job_name("shop-schema", uid=UID, generation=3, attempt=2)
    assert job["metadata"]["namespace"] == "shop"


def test_long_migration_name_gives_valid_labels_and_name() -> None:
    body = minimal()
    body["metadata"] = metadata(("shop." * 50)[:253])
    job = job_for(body)
    assert len(job["metadata"]["name"]) <= 63
    for value in job["metadata"]["labels"].values():
        assert len(value) <= 63 and LABEL_VALUE.match(value)


def test_embedded_runner_wiring() -> None:
    job = job_for(all_knobs())
    pod = job["spec"]["template"]["spec"]
    [init] = pod["initContainers"]
    assert init["name"] == INIT_CONTAINER
    assert init["image"] == RUNNER_IMAGE
    assert init["command"] == ["alembic-operator", "write-runner", "/alembic-operator/runner.py"]
    main = main_container(job)
    assert main["image"] == "ghcr.io/acme/shop:1.4.2"
    assert main["command"] == ["/app/.venv/bin/python", "/alembic-operator/runner.py"]
    assert main["workingDir"] == "/app"
    shared = {"name": "alembic-operator", "mountPath": "/alembic-operator"}
    assert shared in init["volumeMounts"] and shared in main["volumeMounts"]
    assert {"name": "alembic-operator", "emptyDir": {}} in pod["volumes"]


def test_runner_settings_are_flags() -> None:
    main = main_container(job_for(all_knobs()))
    assert main["args"] == [
        "--args-only",
        "--mode=apply",
        "--revision=0007_orders@head",
        "--config=db/alembic.ini",
        "--section=orders",
        "--workdir=/app",
        "--lock=advisory",
        "--lock-timeout=120",
        "--pg-lock-timeout=5s",
        "--pg-statement-timeout=15min",
        "--termination-message-path=/dev/termination-log",
        "-x",
        "dry=false",
        "-x",
        "tenant=acme",
        "--allow-downgrade",
    ]
    assert not [e for e in main["env"] if e["name"].startswith("ALEMBIC_OPERATOR_")]


def test_runner_settings_are_read_back_by_the_runner() -> None:
    main = main_container(job_for(all_knobs()))
    settings = parse_settings(main["args"], {"DATABASE_URL": "sqlite://"})
    assert settings.revision == "0007_orders@head"
    assert settings.section == "orders"
    assert dict(settings.x_args) == {"tenant": "acme", "dry": "false"}
    assert settings.allow_downgrade is True
    assert settings.lock_timeout_seconds == 120
    assert settings.pg_statement_timeout == "15min"


# What an app's envFrom (a ConfigMap with the runner's prefix) could inject.
HOSTILE_ENV = {
    "ALEMBIC_OPERATOR_LOCK_NAME": "someone-elses-lock",
    "ALEMBIC_OPERATOR_LOCK": "none",
    "ALEMBIC_OPERATOR_MODE": "plan",
    "ALEMBIC_OPERATOR_REVISION": "base",
    "ALEMBIC_OPERATOR_ALLOW_DOWNGRADE": "true",
    "ALEMBIC_OPERATOR_LOCK_TIMEOUT_SECONDS": "1",
    "ALEMBIC_OPERATOR_CONNECT_TIMEOUT_SECONDS": "1",
    "ALEMBIC_OPERATOR_X_ARGS": '{"tenant": "evil"}',
    "ALEMBIC_OPERATOR_EXPECT_REVISIONS": "0001_customers",
    "ALEMBIC_OPERATOR_SQL_FILE": "/tmp/elsewhere",
    "ALEMBIC_OPERATOR_TERMINATION_MESSAGE_PATH": "/tmp/elsewhere",
}


def test_the_apps_env_cannot_change_the_embedded_runners_settings() -> None:
    args = main_container(job_for(minimal()))["args"]
    settings = parse_settings(args, {"DATABASE_URL": "sqlite://", **HOSTILE_ENV})
    clean = parse_settings(args, {"DATABASE_URL": "sqlite://"})
    assert settings == clean
    assert (settings.lock_name, settings.lock, settings.mode) == (
        "alembic-operator",
        "advisory",
        "apply",
    )
    assert settings.termination_message_path == "/dev/termination-log"


def test_user_env_comes_after_ours() -> None:
    env = main_container(job_for(all_knobs()))["env"]
    names = [e["name"] for e in env]
    assert names == ["DATABASE_URL", "LOG_LEVEL", "SENTRY_DSN", "POD_NAME"]


def test_command_runner_wiring() -> None:
    job = job_for(command_runner())
    pod = job["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}}]
    main = main_container(job)
    assert main["image"] == "ghcr.io/acme/shop-tools:2.0.0"
    assert main["command"] == ["alembic"]
    assert main["args"] == ["-c", "/app/alembic.ini", "upgrade", "head"]
    env = {e["name"]: e.get("value") for e in main["env"]}
    assert env["PGOPTIONS"] == "-c lock_timeout=2s -c statement_timeout=15min"
    assert env["ALEMBIC_OPERATOR_LOCK"] == "none"


def test_pod_knobs_applied() -> None:
    job = job_for(all_knobs())
    template = job["spec"]["template"]
    pod = template["spec"]
    assert pod["serviceAccountName"] == "shop-migrations"
    assert pod["imagePullSecrets"] == [{"name": "ghcr-pull"}]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"][0]["key"] == "dedicated"
    assert "nodeAffinity" in pod["affinity"]
    assert template["metadata"]["labels"]["team"] == "payments"
    assert template["metadata"]["annotations"] == {
        "cluster-autoscaler.kubernetes.io/safe-to-evict": "false"
    }
    for container in containers(job):
        assert container["resources"]["limits"] == {"memory": "512Mi"}
    main = main_container(job)
    assert main["envFrom"] == [{"configMapRef": {"name": "shop-settings"}, "prefix": "SHOP_"}]


def test_manifest_is_plain_data_and_independent_of_the_body() -> None:
    body = all_knobs()
    job = job_for(body)
    job["spec"]["template"]["spec"]["tolerations"][0]["key"] = "changed"
    assert body["spec"]["tolerations"][0]["key"] == "dedicated"
    assert job_for(body) != job
    yaml.safe_dump(job)  # no MappingProxyType or tuples left inside


NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("ttl", "age", "expired"),
    [
        pytest.param(None, timedelta(days=365), False, id="unset-kept-forever"),
        pytest.param(0, timedelta(0), True, id="zero-at-once"),
        pytest.param(60, timedelta(seconds=59), False, id="before-ttl"),
        pytest.param(60, timedelta(seconds=60), True, id="at-ttl"),
    ],
)
def test_succeeded_job_expired(ttl: int | None, age: timedelta, expired: bool) -> None:
    spec = parse_migration(minimal(ttlSecondsAfterFinished=ttl)).spec
    assert succeeded_job_expired(spec, finished_at=NOW - age, now=NOW) is expired
