"""Admission of custom objects the way kube-apiserver performs it for one CRD version.

Role: the validator the API emulator applies to every write of a custom resource (create,
update, patch and ``/status`` writes alike; it always receives and checks the whole object):

1. prune: fields the schema does not declare are dropped (and reported, see below);
2. default: ``default`` values are filled in, nested ones too wherever the parent object exists;
3. validate ObjectMeta basics (name, generateName, namespace, label and annotation keys);
4. validate the OpenAPI v3 schema: types, enums, patterns, formats, min/max, lengths, item and
   property counts, required fields, ``x-kubernetes-list-type`` set/map uniqueness;
5. unless step 3/4 found a blocking error (wrong type, missing required field, unsupported enum
   value, too long, too many), evaluate the ``x-kubernetes-validations`` CEL rules (``cel.py``),
   with ``oldSelf`` bound on update.

Unknown fields: a real apiserver prunes them silently (``fieldValidation=Ignore``), warns
(``Warn``, kubectl's default) or answers 400 (``Strict``, ``kubectl --validate=strict``).
``CRDValidator.admit`` takes that choice and reports the pruned paths in ``Admitted.pruned`` /
``Admitted.warnings``; the plain ``validator(new, old)`` call prunes (Ignore) and leaves the paths
in ``validator.last_pruned``. Errors raise ``SchemaViolation`` with the apiserver's message and
causes (``.status()`` renders the whole metav1.Status body, code 422).

The caller (the emulator) keeps the apiserver's other duties: dropping ``status`` on create and
keeping the stored status on main-endpoint updates, generation/resourceVersion bookkeeping, and
name generation before validation. This module must not do I/O, hold state about stored objects,
or import alembic/sqlalchemy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from alembic_operator.emulation import errors
from alembic_operator.emulation.cel import RuleSet
from alembic_operator.emulation.jsontree import clone
from alembic_operator.emulation.schemas import (
    FieldError,
    Schema,
    default,
    prune,
    structural_problems,
    validate,
)

FieldValidation = Literal["Ignore", "Warn", "Strict"]

_BLOCKING = frozenset(
    {
        "FieldValueNotSupported", "FieldValueRequired", "FieldValueTooLong", "FieldValueTooMany",
        "FieldValueTypeInvalid",
    }
)  # fmt: skip
_NOT_CHECKED = (
    "some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation"
)
_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = rf"{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*"
_QUALIFIED_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE = rf"({_QUALIFIED_NAME})?"
_SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    f"for validation is '{_DNS1123_SUBDOMAIN}')"
)
_LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used "
    f"for validation is '{_DNS1123_LABEL}')"
)
_MAX_ANNOTATIONS_BYTES = 256 * 1024


class SchemaViolation(Exception):
    """The object was refused; ``message`` and ``causes`` are the apiserver's."""

    def __init__(
        self,
        message: str,
        causes: list[dict[str, str]],
        *,
        code: int = 422,
        reason: str = "Invalid",
        kind: str = "",
        group: str = "",
        name: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.causes = causes
        self.code = code
        self.reason = reason
        self.kind = kind
        self.group = group
        self.name = name

    def status(self) -> dict[str, Any]:
        """The metav1.Status body a real apiserver answers with."""
        details = None
        if self.code == 422:
            details = {"name": self.name, "group": self.group, "kind": self.kind,
                       "causes": self.causes}  # fmt: skip
        return errors.ApiError(self.code, self.reason, self.message, details).status()


@dataclass(frozen=True)
class Admitted:
    """An admitted object: pruned, defaulted and valid."""

    object: dict[str, Any]
    pruned: list[str] = field(default_factory=list)  # "spec.foo", "spec.env[0].bar"

    @property
    def warnings(self) -> list[str]:
        """The Warning headers a real apiserver sends with fieldValidation=Warn."""
        return [f'unknown field "{path}"' for path in self.pruned]


class CRDValidator:
    """Admission for one version of one CRD; calling it is the fixed ``validate(new, old)``."""

    def __init__(self, crd: dict[str, Any], version: str) -> None:
        spec = crd["spec"]
        served = [v for v in spec["versions"] if v["name"] == version]
        if not served:
            raise ValueError(f"{crd['metadata']['name']} has no version {version!r}")
        self.version = version
        self.kind: str = spec["names"]["kind"]
        self.group: str = spec["group"]
        self.namespaced = spec.get("scope", "Namespaced") == "Namespaced"
        self.schema: Schema = served[0]["schema"]["openAPIV3Schema"]
        problems = [p for p in structural_problems(self.schema) if ".description" not in p]
        if problems:
            raise ValueError("not a structural schema: " + "; ".join(problems))
        self.rules = RuleSet(self.schema)
        self.last_pruned: list[str] = []

    def __call__(self, new_obj: dict[str, Any], old_obj: dict[str, Any] | None) -> dict[str, Any]:
        admitted = self.admit(new_obj, old_obj)
        self.last_pruned = admitted.pruned
        return admitted.object

    def default(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Pruned and defaulted copy, without validation: what a read from storage returns."""
        result = clone(obj)
        prune(result, self.schema, "", [], root=True)
        default(result, self.schema)
        return result

    def admit(
        self,
        new_obj: dict[str, Any],
        old_obj: dict[str, Any] | None = None,
        *,
        field_validation: FieldValidation = "Ignore",
    ) -> Admitted:
        """Prune, default and validate ``new_obj`` (``old_obj`` is the stored one on update)."""
        obj = clone(new_obj)
        pruned: list[str] = []
        prune(obj, self.schema, "", pruned, root=True)
        if pruned and field_validation == "Strict":
            unknown = ", ".join(f'unknown field "{path}"' for path in pruned)
            raise SchemaViolation(
                f'{self.kind} in version "{self.version}" cannot be handled as a {self.kind}: '
                f"strict decoding error: {unknown}",
                [],
                code=400,
                reason="BadRequest",
            )
        default(obj, self.schema)
        errors = self._metadata_errors(obj.get("metadata"))
        errors += validate(obj, self.schema, "")
        if any(error.reason in _BLOCKING for error in errors):
            errors.append(FieldError("FieldValueInvalid", "<nil>", _NOT_CHECKED, None))
        else:
            old = self.default(old_obj) if old_obj is not None else None
            errors += self.rules.check(obj, old, has_old=old is not None)
        if errors:
            raise self._violation(obj, errors)
        return Admitted(obj, pruned)

    def _violation(self, obj: dict[str, Any], errors: list[FieldError]) -> SchemaViolation:
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        name = str((meta or {}).get("name") or "")
        texts = list(dict.fromkeys(str(error) for error in errors))  # the aggregate dedups
        joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
        return SchemaViolation(
            f'{self.kind}.{self.group} "{name}" is invalid: {joined}',
            [{"reason": e.reason, "message": e.body(), "field": e.field} for e in errors],
            kind=self.kind,
            group=self.group,
            name=name,
        )

    def _metadata_errors(self, meta: Any) -> list[FieldError]:
        if not isinstance(meta, dict):
            return [FieldError("FieldValueRequired", "metadata", "")]
        errors: list[FieldError] = []
        name, generate = meta.get("name"), meta.get("generateName")
        if not name and not generate:
            detail = "name or generateName is required"
            errors.append(FieldError("FieldValueRequired", "metadata.name", detail))
        for key, value in (("name", name), ("generateName", generate)):
            if not value:
                continue
            checked = value.rstrip("-") if key == "generateName" else value
            errors += _dns(f"metadata.{key}", value, checked, 253, _DNS1123_SUBDOMAIN)
        namespace = meta.get("namespace")
        if namespace and not self.namespaced:
            errors.append(FieldError("FieldValueForbidden", "metadata.namespace", "not allowed"))
        elif namespace:
            errors += _dns("metadata.namespace", namespace, namespace, 63, _DNS1123_LABEL)
        for key, value in (meta.get("labels") or {}).items():
            errors += _qualified_key("metadata.labels", key)
            if (
                not isinstance(value, str)
                or len(value) > 63
                or not re.fullmatch(_LABEL_VALUE, value)
            ):
                detail = f"a valid label must be an empty string or match '{_LABEL_VALUE}'"
                errors.append(FieldError("FieldValueInvalid", "metadata.labels", detail, value))
        annotations = meta.get("annotations") or {}
        for key in annotations:
            errors += _qualified_key("metadata.annotations", key)
        if sum(len(k) + len(str(v)) for k, v in annotations.items()) > _MAX_ANNOTATIONS_BYTES:
            detail = f"may not be more than {_MAX_ANNOTATIONS_BYTES} bytes"
            errors.append(FieldError("FieldValueTooLong", "metadata.annotations", detail))
        return errors


def _dns(path: str, value: Any, checked: Any, limit: int, pattern: str) -> list[FieldError]:
    if not isinstance(value, str):
        detail = f'{path} in body must be of type string: "{type(value).__name__}"'
        return [FieldError("FieldValueTypeInvalid", path, detail, value)]
    errors = []
    if len(checked) > limit:
        detail = f"must be no more than {limit} characters"
        errors.append(FieldError("FieldValueInvalid", path, detail, value))
    if not re.fullmatch(pattern, checked):
        message = _LABEL_MESSAGE if limit == 63 else _SUBDOMAIN_MESSAGE
        errors.append(FieldError("FieldValueInvalid", path, message, value))
    return errors


def _qualified_key(path: str, key: str) -> list[FieldError]:
    prefix, _, name = key.rpartition("/")
    valid = (
        bool(name)
        and len(name) <= 63
        and re.fullmatch(_QUALIFIED_NAME, name) is not None
        and (not prefix or (len(prefix) <= 253 and re.fullmatch(_DNS1123_SUBDOMAIN, prefix)))
    )
    if valid:
        return []
    detail = (
        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
        "end with an alphanumeric character, with an optional DNS subdomain prefix and '/'"
    )
    return [FieldError("FieldValueInvalid", path, detail, key)]


def validator_for(crd: dict[str, Any], version: str) -> CRDValidator:
    """The admission validator for ``version`` of ``crd``.

    The result is callable as ``validate(new_obj, old_obj) -> dict``: it returns the defaulted
    and pruned object or raises ``SchemaViolation``. Raises ``ValueError`` for a CRD the
    apiserver would refuse (non-structural schema, CEL rules that do not compile).
    """
    return CRDValidator(crd, version)
