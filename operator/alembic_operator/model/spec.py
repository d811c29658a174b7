"""The DatabaseMigration spec as typed, immutable values, parsed from the raw object.

Role: :func:`parse_spec` turns the raw ``spec`` into a :class:`MigrationSpec`; raw dicts stop
here. The shape follows the canonical CRD (``crds/databasemigrations.yaml``); its defaults are
applied here too, so an object stored before a default existed still parses.

Kubernetes-typed pass-through values (``env``, ``envFrom``, ``resources``, ``tolerations``,
``affinity``, match expressions) are kept as the raw objects, frozen (``MappingProxyType`` and
tuples, see :func:`freeze`); :func:`thaw` gives plain dicts back for a manifest. They are
validated by the apiserver (the CRD's schema, and core validation when the Job is created).
Values holding such mappings compare by value but are not hashable.

Must not: do I/O, read the clock, or import Kubernetes, kopf or database libraries.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

GROUP = "alembic-operator.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "DatabaseMigration"
RESERVED_PREFIX = f"{GROUP}/"
RESERVED_ENV_PREFIX = "ALEMBIC_OPERATOR_"
DATABASE_URL_ENV = "DATABASE_URL"
LOG_TAIL_LIMIT = 4096  # bytes; the CRD's maxLength (characters) follows
MESSAGE_LIMIT = 32768
REVISION_LIST_LIMIT = 4096

RawObject = Mapping[str, Any]
_EMPTY: RawObject = MappingProxyType({})


def empty_mapping() -> RawObject:
    return _EMPTY


class InvalidMigration(ValueError):
    """The object cannot be turned into a :class:`Migration`; the message names the field."""


class LockMode(enum.StrEnum):
    ADVISORY = "advisory"
    NONE = "none"


class RunnerType(enum.StrEnum):
    EMBEDDED = "embedded"
    COMMAND = "command"


class GateMode(enum.StrEnum):
    PAUSE = "pause"
    NONE = "none"


@dataclass(frozen=True)
class SecretKeyRef:
    name: str
    key: str


@dataclass(frozen=True)
class SessionSettings:
    """PostgreSQL durations such as ``"2s"``; ``None`` leaves the server's setting."""

    lock_timeout: str | None = None
    statement_timeout: str | None = None


@dataclass(frozen=True)
class DatabaseSpec:
    url_secret_ref: SecretKeyRef
    lock: LockMode = LockMode.ADVISORY
    lock_timeout_seconds: int = 300
    session_settings: SessionSettings = SessionSettings()


@dataclass(frozen=True)
class AlembicSpec:
    config: str = "alembic.ini"
    working_dir: str | None = None
    section: str | None = None
    x_args: Mapping[str, str] = field(default_factory=empty_mapping)
    python: str = "python"


@dataclass(frozen=True)
class RunnerSpec:
    type: RunnerType = RunnerType.EMBEDDED
    image: str | None = None
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabelSelector:
    match_labels: Mapping[str, str] = field(default_factory=empty_mapping)
    match_expressions: tuple[RawObject, ...] = ()


@dataclass(frozen=True)
class GateSpec:
    deployments: tuple[str, ...] = ()
    selector: LabelSelector | None = None
    mode: GateMode = GateMode.PAUSE


@dataclass(frozen=True)
class PodSettings:
    """The pod knobs, passed through to the Job's pod template (raw objects, frozen)."""

    env: tuple[RawObject, ...] = ()
    env_from: tuple[RawObject, ...] = ()
    resources: RawObject | None = None
    service_account_name: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    node_selector: Mapping[str, str] = field(default_factory=empty_mapping)
    tolerations: tuple[RawObject, ...] = ()
    affinity: RawObject | None = None
    labels: Mapping[str, str] = field(default_factory=empty_mapping)
    annotations: Mapping[str, str] = field(default_factory=empty_mapping)


@dataclass(frozen=True)
class MigrationSpec:
    database: DatabaseSpec
    image: str | None = None
    revision: str = "head"
    allow_downgrade: bool = False
    alembic: AlembicSpec = AlembicSpec()
    runner: RunnerSpec = RunnerSpec()
    approval_required: bool = False
    dry_run: bool = False
    gate: GateSpec | None = None
    pod: PodSettings = PodSettings()
    active_deadline_seconds: int = 3600
    backoff_limit: int = 2
    ttl_seconds_after_finished: int | None = None
    suspend: bool = False

    @property
    def run_image(self) -> str:
        """The image the migration container runs (runner.image wins for runner.type command)."""
        if self.runner.type is RunnerType.COMMAND and self.runner.image:
            return self.runner.image
        if self.image is None:  # parse_migration refuses this; kept for hand-built values
            raise InvalidMigration("spec.image is required")
        return self.image


# --- status ----------------------------------------------------------------------------------

# --- frozen raw objects --------------------------------------------------------------------


def freeze(value: Any) -> Any:
    """A deep, read-only copy of JSON-like data: mappings become MappingProxyType, lists tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Plain dicts and lists again (for a manifest or a patch)."""
    if isinstance(value, Mapping):
        return {str(k): thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return value


# --- parsing the spec ------------------------------------------------------------------------

_MISSING: Any = object()
_E = TypeVar("_E", bound=enum.Enum)
_CREDENTIAL_NAME = re.compile(
    r"(?i)(password|passwd|secret|token|api_?key|private_?key|credentials?)$"
)


@dataclass(frozen=True)
class FieldReader:
    """Typed reads from one object of the body; errors name the field's path."""

    raw: RawObject
    path: str

    def _value(self, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        value = self.raw.get(key)
        if value is None:
            if default is _MISSING:
                raise InvalidMigration(f"{self.path}{key} is required")
            return default
        # bool is an int: an integer field must not accept true/false.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            name = kind.__name__ if isinstance(kind, type) else "list"
            raise InvalidMigration(f"{self.path}{key} must be of type {name}, not {value!r}")
        return value

    def text(self, key: str, default: str | None = _MISSING) -> Any:
        return self._value(key, str, default)

    def integer(self, key: str, default: int | None = _MISSING) -> Any:
        return self._value(key, int, default)

    def flag(self, key: str, default: bool = False) -> bool:
        return bool(self._value(key, bool, default))

    def sub(self, key: str, *, required: bool = False) -> FieldReader:
        raw = self._value(key, Mapping, _MISSING if required else _EMPTY)
        return FieldReader(raw, f"{self.path}{key}.")

    def has(self, key: str) -> bool:
        return self.raw.get(key) is not None

    def enum(self, key: str, default: _E) -> _E:
        value = self._value(key, str, default.value)
        try:
            return type(default)(value)
        except ValueError:
            allowed = ", ".join(str(m.value) for m in type(default))
            raise InvalidMigration(
                f"{self.path}{key} must be one of {allowed}, not {value!r}"
            ) from None

    def strs(self, key: str) -> tuple[str, ...]:
        items = self._value(key, (list, tuple), ())
        if not all(isinstance(item, str) for item in items):
            raise InvalidMigration(f"{self.path}{key} must be a list of strings")
        return tuple(items)

    def str_map(self, key: str) -> Mapping[str, str]:
        items = self.sub(key).raw
        if not all(isinstance(v, str) for v in items.values()):
            raise InvalidMigration(f"{self.path}{key} must map strings to strings")
        return MappingProxyType(dict(items))

    def objects(self, key: str) -> tuple[RawObject, ...]:
        items = self._value(key, (list, tuple), ())
        if not all(isinstance(item, Mapping) for item in items):
            raise InvalidMigration(f"{self.path}{key} must be a list of objects")
        return tuple(freeze(item) for item in items)

    def frozen(self, key: str) -> RawObject | None:
        return freeze(self.sub(key).raw) if self.has(key) else None


def _database(spec: FieldReader) -> DatabaseSpec:
    db = spec.sub("database", required=True)
    ref = db.sub("urlSecretRef", required=True)
    settings = db.sub("sessionSettings")
    return DatabaseSpec(
        url_secret_ref=SecretKeyRef(name=ref.text("name"), key=ref.text("key")),
        lock=db.enum("lock", LockMode.ADVISORY),
        lock_timeout_seconds=db.integer("lockTimeoutSeconds", 300),
        session_settings=SessionSettings(
            lock_timeout=settings.text("lockTimeout", None),
            statement_timeout=settings.text("statementTimeout", None),
        ),
    )


def _alembic(spec: FieldReader) -> AlembicSpec:
    al = spec.sub("alembic")
    return AlembicSpec(
        config=al.text("config", "alembic.ini"),
        working_dir=al.text("workingDir", None),
        section=al.text("section", None),
        x_args=al.str_map("xArgs"),
        python=al.text("python", "python"),
    )


def _runner(spec: FieldReader) -> RunnerSpec:
    run = spec.sub("runner")
    return RunnerSpec(
        type=run.enum("type", RunnerType.EMBEDDED),
        image=run.text("image", None),
        command=run.strs("command"),
        args=run.strs("args"),
    )


def _gate(spec: FieldReader) -> GateSpec | None:
    if not spec.has("gate"):
        return None
    gate = spec.sub("gate")
    selector = None
    if gate.has("selector"):
        raw = gate.sub("selector")
        selector = LabelSelector(
            match_labels=raw.str_map("matchLabels"),
            match_expressions=raw.objects("matchExpressions"),
        )
    return GateSpec(
        deployments=gate.strs("deployments"),
        selector=selector,
        mode=gate.enum("mode", GateMode.PAUSE),
    )


def _pod(spec: FieldReader) -> PodSettings:
    pull_secrets = spec.objects("imagePullSecrets")
    return PodSettings(
        env=spec.objects("env"),
        env_from=spec.objects("envFrom"),
        resources=spec.frozen("resources"),
        service_account_name=spec.text("serviceAccountName", None),
        image_pull_secrets=tuple(
            FieldReader(s, "spec.imagePullSecrets[].").text("name") for s in pull_secrets
        ),
        node_selector=spec.str_map("nodeSelector"),
        tolerations=spec.objects("tolerations"),
        affinity=spec.frozen("affinity"),
        labels=spec.str_map("podLabels"),
        annotations=spec.str_map("podAnnotations"),
    )


def parse_spec(raw: RawObject) -> MigrationSpec:
    """The typed spec, with the CRD's defaults; raises :class:`InvalidMigration`."""
    spec = FieldReader(raw, "spec.")
    parsed = MigrationSpec(
        database=_database(spec),
        image=spec.text("image", None),
        revision=spec.text("revision", "head"),
        allow_downgrade=spec.flag("allowDowngrade"),
        alembic=_alembic(spec),
        runner=_runner(spec),
        approval_required=spec.sub("approval").flag("required"),
        dry_run=spec.flag("dryRun"),
        gate=_gate(spec),
        pod=_pod(spec),
        active_deadline_seconds=spec.integer("activeDeadlineSeconds", 3600),
        backoff_limit=spec.integer("backoffLimit", 2),
        ttl_seconds_after_finished=spec.integer("ttlSecondsAfterFinished", None),
        suspend=spec.flag("suspend"),
    )
    _check(parsed)
    return parsed


def _check(spec: MigrationSpec) -> None:
    """Rules the operator relies on for safety, re-checked here: the CRD's CEL rules apply to
    writes only, so an object stored under an older CRD may break them."""
    runner = spec.runner
    if runner.type is RunnerType.COMMAND:
        if not runner.command:
            raise InvalidMigration("spec.runner.command is required when runner.type is command")
        if spec.image is None and runner.image is None:
            raise InvalidMigration(
                "spec.image or spec.runner.image is required for runner.type command"
            )
    elif spec.image is None:
        raise InvalidMigration("spec.image is required unless runner.type is command")
    elif runner.command or runner.args or runner.image:
        raise InvalidMigration(
            "spec.runner.command, args and image may only be set when runner.type is command"
        )
    for env in spec.pod.env:
        name = str(env.get("name", ""))
        if name == DATABASE_URL_ENV or name.startswith(RESERVED_ENV_PREFIX):
            raise InvalidMigration(
                f"spec.env {name} is reserved: the operator sets it for the runner"
            )
        if "value" in env and _CREDENTIAL_NAME.search(name):
            raise InvalidMigration(
                f"spec.env {name} looks like a credential: use valueFrom.secretKeyRef"
            )
    for what, mapping in (("podLabels", spec.pod.labels), ("podAnnotations", spec.pod.annotations)):
        if any(key.startswith(RESERVED_PREFIX) for key in mapping):
            raise InvalidMigration(
                f"spec.{what} must not use the reserved {RESERVED_PREFIX} prefix"
            )
    if spec.database.lock is LockMode.ADVISORY and (
        spec.active_deadline_seconds <= spec.database.lock_timeout_seconds
    ):
        raise InvalidMigration(
            "spec.activeDeadlineSeconds must be greater than spec.database.lockTimeoutSeconds"
        )
