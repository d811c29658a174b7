"""Admission of DatabaseMigration objects by the real apiserver: defaults, pruning, CEL."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from tests.crd.apiserver import Admission as CRDValidator
from tests.crd.apiserver import Refused as SchemaViolation
from tests.crd.manifests import DELETE, example_migrations, minimal, with_path

DIGEST = "sha256:" + "ab" * 32
NOT_CHECKED = "some validation rules were not checked because the object was invalid"


def rejected(validator: CRDValidator, obj: dict[str, Any], old: Any = None) -> SchemaViolation:
    with pytest.raises(SchemaViolation) as caught:
        validator(obj, old)
    return caught.value


# --------------------------------------------------------------------------------------------
# Valid objects and defaults


def test_minimal_gets_every_default(validator: CRDValidator) -> None:
    admitted = validator(minimal(), None)
    assert admitted["spec"] == {
        "image": "ghcr.io/acme/shop:1.4.2",
        "revision": "head",
        "allowDowngrade": False,
        "database": {
            "urlSecretRef": {"name": "shop-db", "key": "url"},
            "lock": "advisory",
            "lockTimeoutSeconds": 300,
        },
        "alembic": {"config": "alembic.ini", "python": "python"},
        "runner": {"type": "embedded"},
        "approval": {"required": False},
        "dryRun": False,
        "activeDeadlineSeconds": 3600,
        "backoffLimit": 2,
        "suspend": False,
    }
    assert admitted["status"] == {"observedGeneration": -1}
    assert validator.last_pruned == []


@pytest.mark.parametrize(
    ("name", "obj"), [pytest.param(n, o, id=n) for n, o in example_migrations()]
)
def test_examples_are_admitted_with_defaults(
    validator: CRDValidator, name: str, obj: dict[str, Any]
) -> None:
    admitted = validator.admit(obj, field_validation="Strict")
    assert admitted.pruned == []
    spec = admitted.object["spec"]
    assert spec["runner"]["type"] in {"embedded", "command"}
    assert spec["database"]["lock"] in {"advisory", "none"}
    assert spec["backoffLimit"] >= 0
    assert spec["approval"]["required"] in {True, False}
    assert admitted.object["status"]["observedGeneration"] == -1
    if "gate" in spec:
        assert spec["gate"]["mode"] in {"pause", "none"}


def test_examples_exist() -> None:
    names = {name for name, _ in example_migrations()}
    assert "databasemigration.yaml" in names
    assert len(names) >= 3


def test_nested_defaults_only_where_the_parent_exists(validator: CRDValidator) -> None:
    plain = validator(minimal(), None)["spec"]
    assert "gate" not in plain
    assert "sessionSettings" not in plain["database"]
    gated = validator(minimal(gate={"deployments": ["shop-web"]}), None)["spec"]
    assert gated["gate"] == {"deployments": ["shop-web"], "mode": "pause"}
    explicit = validator(minimal(alembic={"config": "db/alembic.ini"}), None)["spec"]
    assert explicit["alembic"] == {"config": "db/alembic.ini", "python": "python"}


def test_null_fields_take_their_default(validator: CRDValidator) -> None:
    admitted = validator(minimal(revision=None, env=None), None)["spec"]
    assert admitted["revision"] == "head"
    assert "env" not in admitted


def test_the_input_is_not_modified(validator: CRDValidator) -> None:
    obj = minimal(unknown=1)
    before = copy.deepcopy(obj)
    validator(obj, None)
    assert obj == before


@pytest.mark.parametrize(
    ("path", "value"),
    [
        pytest.param("spec.revision", "head", id="revision-head"),
        pytest.param("spec.revision", "heads", id="revision-heads"),
        pytest.param("spec.revision", "base", id="revision-base"),
        pytest.param("spec.revision", "ae1027a6acf", id="revision-id"),
        pytest.param("spec.revision", "0001_initial", id="revision-named"),
        pytest.param("spec.revision", "billing@head", id="revision-branch-head"),
        pytest.param("spec.revision", "feature-x@ae1027a6acf", id="revision-branch-rev"),
        pytest.param("spec.image", "postgres:16", id="image-docker-hub"),
        pytest.param("spec.image", "localhost:5000/shop/app:dev", id="image-registry-port"),
        pytest.param("spec.image", f"ghcr.io/acme/shop@{DIGEST}", id="image-digest"),
        pytest.param("spec.image", f"ghcr.io/acme/shop:1.0@{DIGEST}", id="image-tag-digest"),
        pytest.param("spec.database.sessionSettings", {"lockTimeout": "500ms"}, id="pg-ms"),
        pytest.param("spec.database.sessionSettings", {"statementTimeout": "0"}, id="pg-zero"),
        pytest.param("spec.database.sessionSettings", {"lockTimeout": "2min"}, id="pg-min"),
        pytest.param("spec.alembic.xArgs", {"tenant": "acme", "dry_run.x-y": ""}, id="xargs"),
        pytest.param(
            "spec.env",
            [
                {"name": "LOG_LEVEL", "value": "debug"},
                {"name": "APP_URL", "value": "https://shop.example.com/path"},
                {"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            ],
            id="env-plain-and-secret-ref",
        ),
        pytest.param(
            "spec.runner",
            {"type": "command", "command": ["alembic"], "args": ["upgrade", "head"]},
            id="runner-command-with-spec-image",
        ),
        pytest.param(
            "spec.gate",
            {"selector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]}},
            id="gate-selector-expressions",
        ),
        pytest.param("spec.gate", {"mode": "none"}, id="gate-mode-none"),
        pytest.param("spec.resources", {"limits": {"cpu": 1, "memory": "512Mi"}}, id="resources"),
        pytest.param(
            "spec.affinity",
            {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"x": [1]}}},
            id="affinity-passthrough",
        ),
        pytest.param("spec.activeDeadlineSeconds", 10, id="deadline-short-without-lock"),
        pytest.param("spec.backoffLimit", 0, id="backoff-zero"),
        pytest.param("spec.backoffLimit", 10, id="backoff-ten"),
    ],
)
def test_valid_variations(validator: CRDValidator, path: str, value: Any) -> None:
    obj = with_path(minimal(), path, value)
    if path == "spec.activeDeadlineSeconds":
        obj = with_path(obj, "spec.database.lock", "none")
    assert validator.admit(obj, field_validation="Strict").pruned == []


def test_command_runner_may_bring_its_own_image(validator: CRDValidator) -> None:
    runner = {"type": "command", "image": "ghcr.io/acme/tools:1", "command": ["migrate"]}
    obj = with_path(minimal(runner=runner), "spec.image", DELETE)
    assert "image" not in validator(obj, None)["spec"]


# --------------------------------------------------------------------------------------------
# Unknown fields


@pytest.mark.parametrize(
    ("path", "value", "reported"),
    [
        pytest.param("spec.colour", "blue", "spec.colour", id="spec"),
        pytest.param("spec.database.password", "hunter2", "spec.database.password", id="nested"),
        pytest.param("spec.gate.deployment", ["a"], "spec.gate.deployment", id="typo"),
        pytest.param("status.extra", 1, "status.extra", id="status"),
        pytest.param("metadata.colour", "x", "metadata.colour", id="metadata"),
        pytest.param("spec.affinity.nodeAfinity", {}, "spec.affinity.nodeAfinity", id="affinity"),
    ],
)
def test_unknown_fields_are_pruned_and_reported(
    validator: CRDValidator, path: str, value: Any, reported: str
) -> None:
    obj = with_path(minimal(gate={"mode": "none"}), path, value)
    admitted = validator(obj, None)
    parent, _, leaf = path.rpartition(".")
    node = admitted
    for name in parent.split("."):
        node = node[name]
    assert leaf not in node
    assert validator.last_pruned == [reported]
    warned = validator.admit(obj, field_validation="Warn")
    assert warned.warnings == [f'unknown field "{reported}"']
    with pytest.raises(SchemaViolation) as strict:
        validator.admit(obj, field_validation="Strict")
    assert strict.value.code == 400
    assert strict.value.message == (
        'DatabaseMigration in version "v1alpha1" cannot be handled as a DatabaseMigration: '
        f'strict decoding error: unknown field "{reported}"'
    )


def test_unknown_fields_in_list_items_are_reported_with_their_index(validator: CRDValidator):
    obj = minimal(env=[{"name": "A", "value": "1"}, {"name": "B", "vaule": "2"}])
    assert validator(obj, None)["spec"]["env"][1] == {"name": "B"}
    assert validator.last_pruned == ["spec.env[1].vaule"]


# --------------------------------------------------------------------------------------------
# Invalid objects: (path, value, fragments expected in the message)

INVALID = [
    pytest.param(
        "spec.revision",
        "a/b",
        [
            'spec.revision: Invalid value: "a/b": spec.revision in body should match '
            "'^([A-Za-z0-9_][A-Za-z0-9_-]*@)?[A-Za-z0-9_]+$'"
        ],
        id="revision-slash",
    ),
    pytest.param("spec.revision", "../x", ['Invalid value: "../x"'], id="revision-dotdot"),
    pytest.param("spec.revision", "a b", ['Invalid value: "a b"'], id="revision-space"),
    pytest.param("spec.revision", "+1", ['Invalid value: "+1"'], id="revision-relative"),
    pytest.param("spec.revision", "a:b", ['Invalid value: "a:b"'], id="revision-range"),
    pytest.param("spec.revision", "", ["should be at least 1 chars long"], id="revision-empty"),
    pytest.param(
        "spec.revision",
        "a" * 129,
        ["spec.revision: Too long: may not be more than 128 bytes"],
        id="revision-too-long",
    ),
    pytest.param("spec.image", "Shop:1", ['spec.image: Invalid value: "Shop:1"'], id="image-case"),
    pytest.param(
        "spec.image", "shop app", ['spec.image: Invalid value: "shop app"'], id="image-ws"
    ),
    pytest.param(
        "spec.database.lock",
        "exclusive",
        [
            'spec.database.lock: Unsupported value: "exclusive": '
            'supported values: "advisory", "none"'
        ],
        id="lock-enum",
    ),
    pytest.param(
        "spec.runner.type",
        "shell",
        ['spec.runner.type: Unsupported value: "shell"'],
        id="runner-enum",
    ),
    pytest.param("spec.gate", {"mode": "block"}, ["spec.gate.mode: Unsupported value"], id="mode"),
    pytest.param(
        "spec.database.urlSecretRef",
        DELETE,
        ["spec.database.urlSecretRef: Required value", NOT_CHECKED],
        id="missing-url-secret-ref",
    ),
    pytest.param(
        "spec.database.urlSecretRef",
        {"name": "shop-db"},
        ["spec.database.urlSecretRef.key: Required value"],
        id="missing-url-secret-key",
    ),
    pytest.param("spec.database", DELETE, ["spec.database: Required value"], id="missing-db"),
    pytest.param(
        "spec.database.urlSecretRef",
        {"name": "Shop_DB", "key": "url"},
        ['spec.database.urlSecretRef.name: Invalid value: "Shop_DB"'],
        id="secret-name",
    ),
    pytest.param(
        "spec.backoffLimit",
        -1,
        [
            "spec.backoffLimit: Invalid value: -1: spec.backoffLimit in body should be greater "
            "than or equal to 0"
        ],
        id="backoff-negative",
    ),
    pytest.param(
        "spec.backoffLimit", 11, ["should be less than or equal to 10"], id="backoff-too-big"
    ),
    pytest.param(
        "spec.backoffLimit",
        "2",
        [
            'spec.backoffLimit: Invalid value: "string": spec.backoffLimit in body must be of type '
            'integer: "string"',
            NOT_CHECKED,
        ],
        id="backoff-type",
    ),
    pytest.param(
        "spec.activeDeadlineSeconds", 0, ["should be greater than or equal to 1"], id="deadline-0"
    ),
    pytest.param(
        "spec.database.lockTimeoutSeconds", 0, ["greater than or equal to 1"], id="lock-timeout-0"
    ),
    pytest.param(
        "spec.database.sessionSettings",
        {"lockTimeout": "5 seconds"},
        ['spec.database.sessionSettings.lockTimeout: Invalid value: "5 seconds"'],
        id="pg-duration",
    ),
    pytest.param(
        "spec.env",
        [{"name": "DATABASE_URL_COPY", "value": "postgresql://shop:s3cret@db:5432/shop"}],
        [
            'spec.env[0].value: Invalid value: "postgresql://shop:s3cret@db:5432/shop": must not '
            "contain a password or a URL with credentials"
        ],
        id="env-url-with-password",
    ),
    pytest.param(
        "spec.env",
        [{"name": "DSN", "value": "host=db user=shop password=s3cret"}],
        ["spec.env[0].value: Invalid value", "must not contain a password"],
        id="env-libpq-password",
    ),
    pytest.param(
        "spec.env",
        [{"name": "DB_PASSWORD", "value": "s3cret"}],
        ["spec.env[0]: Invalid value: env DB_PASSWORD looks like a credential"],
        id="env-credential-name",
    ),
    pytest.param(
        "spec.env",
        [{"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "a", "key": "b"}}}],
        ["spec.env[0].name: Invalid value: env DATABASE_URL is reserved"],
        id="env-reserved-name",
    ),
    pytest.param(
        "spec.env",
        [{"name": "ALEMBIC_OPERATOR_MODE", "value": "plan"}],
        ["env ALEMBIC_OPERATOR_MODE is reserved"],
        id="env-reserved-prefix",
    ),
    pytest.param(
        "spec.env",
        [{"name": "A", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        ["spec.env[0]: Invalid value: value and valueFrom are mutually exclusive"],
        id="env-value-and-value-from",
    ),
    pytest.param(
        "spec.env",
        [{"name": "A", "valueFrom": {}}],
        ["spec.env[0].valueFrom: Invalid value: exactly one of secretKeyRef"],
        id="env-value-from-empty",
    ),
    pytest.param(
        "spec.env",
        [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}],
        ['spec.env[1]: Duplicate value: {"name":"A"}'],
        id="env-duplicate-name",
    ),
    pytest.param(
        "spec.envFrom",
        [{"configMapRef": {"name": "a"}, "secretRef": {"name": "b"}}],
        ["spec.envFrom[0]: Invalid value: exactly one of configMapRef or secretRef"],
        id="env-from-both",
    ),
    pytest.param(
        "spec.alembic.xArgs",
        {"url": "mysql+pymysql://shop:s3cret@db/shop"},
        [
            'spec.alembic.xArgs[url]: Invalid value: "mysql+pymysql://shop:s3cret@db/shop": '
            "must not contain a password or a URL with credentials"
        ],
        id="xargs-url-password",
    ),
    pytest.param(
        "spec.alembic.xArgs",
        {"db_password": "s3cret"},
        ["spec.alembic.xArgs: Invalid value: xArgs must not carry credentials"],
        id="xargs-credential-key",
    ),
    pytest.param(
        "spec.alembic.xArgs",
        {"bad key": "1"},
        ["spec.alembic.xArgs: Invalid value: xArgs keys must start with a letter"],
        id="xargs-key-pattern",
    ),
    pytest.param(
        "spec.alembic.xArgs",
        {"k": "v" * 1025},
        ["spec.alembic.xArgs.k: Too long: may not be more than 1024 bytes"],
        id="xargs-value-length",
    ),
    pytest.param(
        "spec.alembic.xArgs",
        {f"k{i}": "v" for i in range(33)},
        ["spec.alembic.xArgs: Too many: 33: must have at most 32 items"],
        id="xargs-too-many",
    ),
    pytest.param(
        "spec.alembic.workingDir",
        "app",
        ['spec.alembic.workingDir: Invalid value: "app"'],
        id="working-dir-relative",
    ),
    pytest.param(
        "spec.image",
        DELETE,
        [
            "spec.image: Required value: spec.image is required unless runner.type is command "
            "and runner.image names the image that runs the command"
        ],
        id="image-missing-embedded-runner",
    ),
    pytest.param(
        "spec.runner",
        {"type": "command"},
        [
            "spec.runner.command: Required value: runner.command is required when runner.type is "
            "command"
        ],
        id="command-missing",
    ),
    pytest.param(
        "spec.runner",
        {"type": "command", "command": []},
        ["runner.command is required when runner.type is command"],
        id="command-empty",
    ),
    pytest.param(
        "spec.runner",
        {"command": ["alembic", "upgrade", "head"]},
        [
            "spec.runner: Forbidden: runner.command, runner.args and runner.image may only be set "
            "when runner.type is command"
        ],
        id="command-with-embedded-runner",
    ),
    pytest.param(
        "spec.runner",
        {"type": "command", "command": ["alembic", "-x", "url=postgresql://u:p@db/x"]},
        ["spec.runner.command[2]: Invalid value", "must not contain a password"],
        id="command-with-credentials",
    ),
    pytest.param(
        "spec.runner",
        {"type": "command", "command": ["migrate"], "args": ["--password=s3cret"]},
        ["spec.runner.args[0]: Invalid value", "must not contain a password"],
        id="args-with-password",
    ),
    pytest.param(
        "spec.gate",
        {"deployments": []},
        ["spec.gate: Invalid value: gate needs deployments or a selector when mode is pause"],
        id="gate-without-targets",
    ),
    pytest.param(
        "spec.gate",
        {"selector": {}},
        ["spec.gate.selector: Invalid value: gate.selector must not be empty"],
        id="gate-empty-selector",
    ),
    pytest.param(
        "spec.gate",
        {"selector": {"matchExpressions": [{"key": "app", "operator": "In"}]}},
        ["spec.gate.selector.matchExpressions[0]: Invalid value: values must be non-empty"],
        id="gate-in-without-values",
    ),
    pytest.param(
        "spec.gate",
        {"deployments": ["Web_App"]},
        ['spec.gate.deployments[0]: Invalid value: "Web_App"'],
        id="gate-deployment-name",
    ),
    pytest.param(
        "spec.gate",
        {"deployments": ["web", "web"]},
        ['spec.gate.deployments[1]: Duplicate value: "web"'],
        id="gate-duplicate-deployment",
    ),
    pytest.param(
        "spec.podLabels",
        {"alembic-operator.dev/migration": "x"},
        ["spec.podLabels: Invalid value: podLabels must not use the reserved"],
        id="pod-labels-reserved",
    ),
    pytest.param(
        "spec.podAnnotations",
        {"note": "see postgresql://admin:root@db"},
        ["spec.podAnnotations[note]: Invalid value", "must not contain a password"],
        id="pod-annotation-credentials",
    ),
    pytest.param(
        "spec.tolerations",
        [{"key": "k", "operator": "Exists", "value": "v"}],
        ["spec.tolerations[0]: Invalid value: value must be empty when operator is Exists"],
        id="toleration-exists-with-value",
    ),
    pytest.param(
        "spec.resources",
        {"limits": {"memory": "lots"}},
        ['spec.resources.limits.memory: Invalid value: "lots"'],
        id="resources-quantity",
    ),
    pytest.param(
        "spec.activeDeadlineSeconds",
        300,
        [
            "spec.activeDeadlineSeconds: Invalid value: activeDeadlineSeconds must be greater than "
            "database.lockTimeoutSeconds"
        ],
        id="deadline-below-lock-timeout",
    ),
    pytest.param(
        "spec.serviceAccountName",
        "Bad Name",
        ['spec.serviceAccountName: Invalid value: "Bad Name"'],
        id="service-account-name",
    ),
    pytest.param("spec", DELETE, ["spec: Required value"], id="spec-missing"),
]


@pytest.mark.parametrize(("path", "value", "fragments"), INVALID)
def test_invalid_objects_are_rejected(
    validator: CRDValidator, path: str, value: Any, fragments: list[str]
) -> None:
    error = rejected(validator, with_path(minimal(), path, value))
    assert error.message.startswith('DatabaseMigration.alembic-operator.dev "shop" is invalid: ')
    for fragment in fragments:
        assert fragment in error.message
    assert error.code == 422
    assert all(set(cause) == {"reason", "message", "field"} for cause in error.causes)


def test_error_format_matches_the_apiserver(validator: CRDValidator) -> None:
    error = rejected(validator, minimal(revision="a/b"))
    pattern = "^([A-Za-z0-9_][A-Za-z0-9_-]*@)?[A-Za-z0-9_]+$"
    assert error.message == (
        'DatabaseMigration.alembic-operator.dev "shop" is invalid: spec.revision: Invalid value: '
        f"\"a/b\": spec.revision in body should match '{pattern}'"
    )
    assert error.causes == [
        {
            "reason": "FieldValueInvalid",
            "message": f"Invalid value: \"a/b\": spec.revision in body should match '{pattern}'",
            "field": "spec.revision",
        }
    ]
    status = error.status()
    assert (status["kind"], status["status"], status["reason"], status["code"]) == (
        "Status",
        "Failure",
        "Invalid",
        422,
    )
    assert status["details"] == {
        "name": "shop",
        "group": "alembic-operator.dev",
        "kind": "DatabaseMigration",
        "causes": error.causes,
    }


def test_several_errors_are_listed_in_brackets(validator: CRDValidator) -> None:
    error = rejected(validator, minimal(revision="a b", backoffLimit=-1))
    # The real apiserver lists them in no fixed order (it differs from one request to the next).
    prefix = 'DatabaseMigration.alembic-operator.dev "shop" is invalid: ['
    assert error.message.startswith(prefix) and error.message.endswith("]")
    assert "spec.revision: Invalid value" in error.message
    assert "spec.backoffLimit in body should be greater than or equal to 0" in error.message
    assert sorted(cause["field"] for cause in error.causes) == [
        "spec.backoffLimit",
        "spec.revision",
    ]


def test_blocking_errors_skip_the_cel_rules(validator: CRDValidator) -> None:
    obj = with_path(minimal(database={"lock": "none"}), "spec.image", DELETE)
    error = rejected(validator, obj)
    assert "spec.image is required" not in error.message
    assert error.causes[-1] == {
        "reason": "FieldValueInvalid",
        "message": f"Invalid value: null: {NOT_CHECKED}; correct the existing errors to complete "
        "validation",
        "field": "<nil>",
    }


# --------------------------------------------------------------------------------------------
# Metadata


@pytest.mark.parametrize(
    ("metadata", "fragment"),
    [
        pytest.param({"name": "Shop_Schema"}, 'metadata.name: Invalid value: "Shop_Schema": a '
                     "lowercase RFC 1123 subdomain", id="name-case"),
        pytest.param({"name": "a" * 254}, "must be no more than 253 characters", id="name-long"),
        pytest.param({}, "metadata.name: Required value: name or generateName is required",
                     id="name-missing"),
        pytest.param({"name": "ok", "namespace": "Bad_NS"}, 'namespaces "Bad_NS" not found',
                     id="namespace"),
        pytest.param({"name": "ok", "labels": {"a": "b c"}}, "metadata.labels: Invalid value",
                     id="label-value"),
        pytest.param({"name": "ok", "annotations": {"bad key": ""}},
                     'metadata.annotations: Invalid value: "bad key"', id="annotation-key"),
    ],
)  # fmt: skip
def test_metadata_is_checked(validator: CRDValidator, metadata: dict[str, Any], fragment: str):
    obj = minimal()
    obj["metadata"] = metadata
    assert fragment in rejected(validator, obj).message


def test_generate_name_alone_is_enough(validator: CRDValidator) -> None:
    obj = minimal()
    obj["metadata"] = {"generateName": "shop-"}
    metadata = validator(obj, None)["metadata"]
    assert metadata["generateName"] == "shop-"
    assert re.fullmatch(r"shop-[a-z0-9]{5}", metadata["name"])  # named even in a dry run


def test_a_70_character_name_is_accepted(validator: CRDValidator) -> None:
    obj = minimal()
    obj["metadata"]["name"] = "m" * 70
    assert validator(obj, None)["metadata"]["name"] == "m" * 70


# --------------------------------------------------------------------------------------------
# Updates: transition rules


def test_database_change_on_update_is_refused(validator: CRDValidator) -> None:
    stored = validator(minimal(), None)
    changed = with_path(stored, "spec.database.urlSecretRef", {"name": "other-db", "key": "url"})
    error = rejected(validator, changed, stored)
    assert error.message == (
        'DatabaseMigration.alembic-operator.dev "shop" is invalid: spec.database.urlSecretRef: '
        "Invalid value: database.urlSecretRef is immutable: a DatabaseMigration always targets "
        "the same database; create a new DatabaseMigration for another one"
    )


def test_database_secret_key_is_immutable_too(validator: CRDValidator) -> None:
    stored = validator(minimal(), None)
    changed = with_path(stored, "spec.database.urlSecretRef.key", "other")
    assert "database.urlSecretRef is immutable" in rejected(validator, changed, stored).message


def test_transition_rules_are_skipped_on_create(validator: CRDValidator) -> None:
    obj = with_path(minimal(), "spec.database.urlSecretRef", {"name": "other-db", "key": "url"})
    assert validator(obj, None)["spec"]["database"]["urlSecretRef"]["name"] == "other-db"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        pytest.param("spec.database.lockTimeoutSeconds", 60, id="lock-timeout"),
        pytest.param("spec.database.lock", "none", id="lock-mode"),
        pytest.param("spec.database.sessionSettings", {"lockTimeout": "1s"}, id="session"),
        pytest.param("spec.image", "ghcr.io/acme/shop:1.5.0", id="image"),
        pytest.param("spec.revision", "ae1027a6acf", id="revision"),
    ],
)
def test_other_fields_may_change_on_update(validator: CRDValidator, path: str, value: Any):
    stored = validator(minimal(), None)
    assert validator(with_path(stored, path, value), stored) is not None


def test_an_unchanged_reapply_passes(validator: CRDValidator) -> None:
    """kubectl apply of the same manifest: the stored object is defaulted, the new one not yet."""
    stored = validator(minimal(), None)
    again = validator(minimal(), stored)
    assert (again["spec"], again.get("status")) == (stored["spec"], stored.get("status"))


def test_stored_objects_without_defaults_are_defaulted_before_comparison(
    validator: CRDValidator,
) -> None:
    raw_stored = minimal()  # as written before a default existed
    assert validator(minimal(), raw_stored)["spec"]["database"]["lock"] == "advisory"


# --------------------------------------------------------------------------------------------
# Status writes (the whole object is validated, status included)


def stored_with_status(validator: CRDValidator, **status: Any) -> dict[str, Any]:
    obj = validator(minimal(), None)
    obj["status"] = {"observedGeneration": 1, **status}
    return obj


def test_a_full_status_is_accepted(validator: CRDValidator) -> None:
    status = {
        "phase": "Succeeded",
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Applied",
                "message": "at head",
                "lastTransitionTime": "2025-01-02T03:04:05Z",
                "observedGeneration": 1,
            },
            {
                "type": "Stalled",
                "status": "False",
                "reason": "Applied",
                "lastTransitionTime": "2025-01-02T03:04:05.123+01:00",
            },
        ],
        "targetRevision": "c3d4",
        "fromRevision": "base",
        "currentRevision": "c3d4",
        "appliedRevisions": ["a1b2", "c3d4"],
        "plan": {"hash": "sha256:ab", "revisions": ["a1b2"], "direction": "upgrade",
                 "destructive": False, "sqlConfigMap": "shop-plan", "generation": 1},
        "job": {"name": "shop-1-abcdef", "uid": "1234", "attempt": 1},
        "attempts": 1,
        "retryToken": "2025-01-02",
        "startedAt": "2025-01-02T03:04:05Z",
        "finishedAt": "2025-01-02T03:04:07Z",
        "durationSeconds": 1.75,
        "message": "applied 2 revisions",
        "logTail": "x" * 4096,
        "gate": {"held": False, "deployments": []},
        "lastSucceeded": {"image": "ghcr.io/acme/shop:1.4.2", "revision": "c3d4",
                          "generation": 1, "finishedAt": "2025-01-02T03:04:07Z"},
        "kopf": {"progress": {"handler": {"started": "2025-01-02T03:04:05", "retries": 0}}},
    }  # fmt: skip
    obj = stored_with_status(validator, **status)
    assert validator.admit(obj, obj, field_validation="Strict").object["status"] == {
        "observedGeneration": 1,
        **status,
    }


@pytest.mark.parametrize(
    ("status", "fragment"),
    [
        pytest.param(
            {"logTail": "x" * 4097},
            "status.logTail: Too long: may not be more than 4096 bytes",
            id="log-tail-too-long",
        ),
        pytest.param(
            {"phase": "Done"},
            'status.phase: Unsupported value: "Done": supported values: "Pending", "Planning", '
            '"AwaitingApproval", "Running", "Succeeded", "Failed"',
            id="phase-enum",
        ),
        pytest.param(
            {"observedGeneration": -2},
            "status.observedGeneration: Invalid value: -2",
            id="observed-generation",
        ),
        pytest.param(
            {"startedAt": "yesterday"},
            'status.startedAt: Invalid value: "yesterday": startedAt in body must be of '
            'type date-time: "yesterday"',
            id="date-time",
        ),
        pytest.param(
            {"durationSeconds": "1s"},
            'status.durationSeconds: Invalid value: "string": durationSeconds in body must be '
            "of type number",
            id="duration-type",
        ),
        pytest.param(
            {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "Yes",
                        "reason": "Applied",
                        "lastTransitionTime": "2025-01-02T03:04:05Z",
                    }
                ]
            },
            'status.conditions[0].status: Unsupported value: "Yes"',
            id="condition-status",
        ),
        pytest.param(
            {"conditions": [{"type": "Ready", "status": "True"}]},
            "status.conditions[0].reason: Required value",
            id="condition-reason-required",
        ),
        pytest.param(
            {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "A",
                        "lastTransitionTime": "2025-01-02T03:04:05Z",
                    },
                    {
                        "type": "Ready",
                        "status": "False",
                        "reason": "B",
                        "lastTransitionTime": "2025-01-02T03:04:05Z",
                    },
                ]
            },
            'status.conditions[1]: Duplicate value: {"type":"Ready"}',
            id="condition-duplicate-type",
        ),
    ],
)
def test_invalid_status_is_rejected(validator: CRDValidator, status: dict[str, Any], fragment: str):
    obj = stored_with_status(validator, **status)
    assert fragment in rejected(validator, obj, obj).message


def test_status_defaults_observed_generation(validator: CRDValidator) -> None:
    obj = validator(minimal(), None)
    obj["status"] = {"phase": "Pending"}
    assert validator(obj, obj)["status"] == {"phase": "Pending", "observedGeneration": -1}


def test_default_is_what_a_read_returns(validator: CRDValidator) -> None:
    read = validator.read_back(minimal(colour="blue"))
    assert "colour" not in read["spec"]
    assert read["spec"]["revision"] == "head"
    assert read["status"] == {"observedGeneration": -1}
