"""Validation of ``metadata`` on every write, as the apiserver's ObjectMeta validation does it.

Names (DNS subdomain; DNS label for namespaces and services; path segment for RBAC objects),
label keys and values (qualified names, at most 63 characters, a restricted alphabet), annotation
keys and total size (256 KiB), ownerReferences (required fields, at most one controller) and
finalizers. Errors are :class:`~.errors.FieldError` lists with the apiserver's messages.
"""

from __future__ import annotations

import re
from typing import Any

from alembic_operator.emulation.catalog import ResourceType
from alembic_operator.emulation.errors import FieldError

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value', "
    " or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
QUALIFIED_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used "
    "for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
TOO_LONG_63 = "must be no more than 63 characters"


def _qualified_name_errors(field: str, key: str) -> list[FieldError]:
    prefix, _, name = key.rpartition("/")
    errors = []
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        errors.append(FieldError(field, "Invalid value", f"prefix part {SUBDOMAIN_MSG}", key))
    if len(name) > 63:
        errors.append(FieldError(field, "Invalid value", f"name part {TOO_LONG_63}", key))
    elif not _LABEL_NAME.match(name):
        errors.append(FieldError(field, "Invalid value", QUALIFIED_MSG, key))
    return errors


def label_value_errors(field: str, value: Any) -> list[FieldError]:
    """Errors for one label value (at most 63 characters of a restricted alphabet)."""
    text = str(value) if value is not None else ""
    if len(text) > 63:
        return [FieldError(field, "Invalid value", TOO_LONG_63, text)]
    if not _LABEL_VALUE.match(text) or not isinstance(value, str):
        return [FieldError(field, "Invalid value", VALUE_MSG, text)]
    return []


def _name_errors(rtype: ResourceType, name: str) -> list[FieldError]:
    if rtype.plural == "namespaces" or (rtype.group, rtype.plural) == ("", "services"):
        if len(name) > 63:
            return [FieldError("metadata.name", "Invalid value", TOO_LONG_63, name)]
        if not _DNS_LABEL.match(name):
            return [FieldError("metadata.name", "Invalid value", LABEL_MSG, name)]
        return []
    if rtype.group == "rbac.authorization.k8s.io":
        if name in {".", ".."} or "/" in name or "%" in name:
            return [
                FieldError("metadata.name", "Invalid value", "may not contain '/' or '%'", name)
            ]
        return []
    if len(name) > 253:
        return [
            FieldError(
                "metadata.name", "Invalid value", "must be no more than 253 characters", name
            )
        ]
    if not _DNS_SUBDOMAIN.match(name):
        return [FieldError("metadata.name", "Invalid value", SUBDOMAIN_MSG, name)]
    return []


def _map_errors(meta: dict[str, Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        return [FieldError("metadata.labels", "Invalid value", "must be a map", labels)]
    for key, value in labels.items():
        errors.extend(_qualified_name_errors("metadata.labels", key))
        errors.extend(label_value_errors("metadata.labels", value))
    annotations = meta.get("annotations") or {}
    if not isinstance(annotations, dict):
        return [FieldError("metadata.annotations", "Invalid value", "must be a map", annotations)]
    for key, value in annotations.items():
        errors.extend(_qualified_name_errors("metadata.annotations", key))
        if not isinstance(value, str):
            errors.append(FieldError("metadata.annotations", "Invalid value", "not a string", key))
    if sum(len(k) + len(str(v)) for k, v in annotations.items()) > 262144:
        detail = "must have at most 262144 bytes"
        errors.append(FieldError("metadata.annotations", "Too long", detail))
    return errors


def _reference_errors(meta: dict[str, Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    refs = meta.get("ownerReferences") or []
    for i, ref in enumerate(refs):
        for required in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(required):
                field = f"metadata.ownerReferences[{i}].{required}"
                errors.append(FieldError(field, "Required value"))
    if sum(1 for ref in refs if ref.get("controller")) > 1:
        detail = "Only one reference can have Controller set to true"
        errors.append(FieldError("metadata.ownerReferences", "Invalid value", detail, refs))
    for i, finalizer in enumerate(meta.get("finalizers") or []):
        if not isinstance(finalizer, str) or not finalizer:
            field = f"metadata.finalizers[{i}]"
            errors.append(FieldError(field, "Invalid value", "must be a string", finalizer))
    return errors


def metadata_errors(rtype: ResourceType, obj: dict[str, Any]) -> list[FieldError]:
    """Validate ``metadata`` as every apiserver write does."""
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if not name:
        detail = "name or generateName is required"
        errors = [FieldError("metadata.name", "Required value", detail)]
    else:
        errors = _name_errors(rtype, str(name))
    return errors + _map_errors(meta) + _reference_errors(meta)
