"""The apiserver's structural-schema mechanics for custom resources.

Role: pruning, defaulting and OpenAPI v3 value validation of a custom object against a CRD's
``openAPIV3Schema``, producing field errors with the texts kube-apiserver (kube-openapi and
apimachinery's ``field`` package) produces, plus a checker for the structural-schema rules a CRD
must satisfy. ``admission.py`` orchestrates these steps and ``cel.py`` adds the
``x-kubernetes-validations`` rules.

It must not: do any I/O, know about a particular CRD, evaluate CEL, or import alembic/sqlalchemy.
Everything works on plain JSON-like values (dict, list, str, int, float, bool, None).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

Schema = dict[str, Any]

OMIT: Final = "\x00omit"  # a FieldError whose value is not rendered (apimachinery's OmitValueType)

# Root fields every object keeps whatever the schema says, and the fields ObjectMeta decodes.
ROOT_FIELDS: Final = frozenset({"apiVersion", "kind", "metadata"})
OBJECT_META_FIELDS: Final = frozenset(
    {
        "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
        "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
        "annotations", "ownerReferences", "finalizers", "managedFields",
    }
)  # fmt: skip

_TITLES: Final = {
    "FieldValueInvalid": "Invalid value",
    "FieldValueTypeInvalid": "Invalid value",
    "FieldValueRequired": "Required value",
    "FieldValueNotSupported": "Unsupported value",
    "FieldValueForbidden": "Forbidden",
    "FieldValueTooLong": "Too long",
    "FieldValueTooMany": "Too many",
    "FieldValueDuplicate": "Duplicate value",
    "InternalError": "Internal error",
}
_NO_VALUE: Final = frozenset(
    {"FieldValueRequired", "FieldValueForbidden", "FieldValueTooLong", "InternalError"}
)
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True)
class FieldError:
    """One field error, rendered like apimachinery's ``field.Error``."""

    reason: str  # a metav1.CauseType: FieldValueInvalid, FieldValueRequired, ...
    field: str  # "spec.revision", "spec.env[0].value", "<nil>" for object-wide errors
    detail: str = ""
    value: Any = OMIT

    def body(self) -> str:
        """The message without the field (a cause's ``message``)."""
        text = _TITLES.get(self.reason, self.reason)
        if self.reason not in _NO_VALUE and self.value is not OMIT:
            text += f": {render_value(self.value)}"
        return f"{text}: {self.detail}" if self.detail else text

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"


def render_value(value: Any) -> str:
    """Go's rendering of a bad value: %q for strings, %v for numbers and booleans, else JSON."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def json_type(value: Any) -> str:
    """The JSON type name kube-openapi reports for a value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _type_ok(value: Any, schema: Schema) -> bool:
    if schema.get("x-kubernetes-int-or-string"):
        return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, str)
    wanted = schema.get("type")
    actual = json_type(value)
    if wanted is None or wanted == actual:
        return True
    if wanted == "integer":
        return isinstance(value, float) and value.is_integer()
    return wanted == "number" and actual == "integer"


def _known(schema: Schema, key: str) -> Schema | None:
    """The schema of an object's field, or None when the field is unknown."""
    props: dict[str, Schema] = schema.get("properties") or {}
    if key in props:
        return props[key]
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


# ---------------------------------------------------------------------------------------------
# Pruning and defaulting (apiextensions-apiserver pkg/apiserver/schema/{pruning,defaulting}).


def prune(value: Any, schema: Schema, path: str, pruned: list[str], *, root: bool = False) -> None:
    """Drop, in place, the fields the schema does not declare; record their paths."""
    if isinstance(value, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields") and not schema.get("properties"):
            return
        for key in list(value):
            sub = _known(schema, key)
            if root and key in ROOT_FIELDS:
                if key == "metadata" and isinstance(value[key], dict):
                    for meta_key in [k for k in value[key] if k not in OBJECT_META_FIELDS]:
                        pruned.append(child("metadata", meta_key))
                        del value[key][meta_key]
                continue
            if sub is None:
                if not schema.get("x-kubernetes-preserve-unknown-fields"):
                    pruned.append(child(path, key))
                    del value[key]
                continue
            here = child(path, key) if key in (schema.get("properties") or {}) else f"{path}[{key}]"
            prune(value[key], sub, here, pruned)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            prune(item, schema["items"], f"{path}[{index}]", pruned)


def default(value: Any, schema: Schema) -> None:
    """Apply defaults in place: a missing (or non-nullable null) field with a default gets a copy
    of it, and defaulting recurses into every present object, including fresh defaults."""
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            missing = key not in value or (value[key] is None and not sub.get("nullable"))
            if "default" in sub and missing:
                value[key] = json.loads(json.dumps(sub["default"]))
            elif key in value and value[key] is None and not sub.get("nullable"):
                del value[key]  # non-nullable nulls without a default are pruned
        for key, item in value.items():
            sub_schema = _known(schema, key)
            if sub_schema is not None:
                default(item, sub_schema)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            default(item, schema["items"])


# ---------------------------------------------------------------------------------------------
# OpenAPI value validation (kube-openapi pkg/validation/validate, converted to field errors the
# way apiextensions-apiserver's kubeOpenAPIResultToFieldErrors does).


def _num(limit: Any) -> str:
    return render_value(float(limit))


def validate(value: Any, schema: Schema, path: str) -> list[FieldError]:
    """Validate one value against its schema node; returns the errors, parents before children."""
    if value is None and schema.get("nullable"):
        return []
    if not _type_ok(value, schema):
        wanted = "integer,string" if schema.get("x-kubernetes-int-or-string") else schema["type"]
        actual = json_type(value)
        detail = f'{path} in body must be of type {wanted}: "{actual}"'
        return [FieldError("FieldValueTypeInvalid", path, detail, actual)]
    errors: list[FieldError] = []
    if isinstance(value, str):
        errors += _validate_string(value, schema, path)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        errors += _validate_number(value, schema, path)
    elif isinstance(value, list):
        return _validate_array(value, schema, path)
    elif isinstance(value, dict):
        return _validate_object(value, schema, path)
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(json.dumps(v) for v in schema["enum"])
        errors.append(
            FieldError("FieldValueNotSupported", path, f"supported values: {allowed}", value)
        )
    return errors


def _validate_string(value: str, schema: Schema, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        size = schema["maxLength"]
        unit = "byte" if size == 1 else "bytes"
        errors.append(FieldError("FieldValueTooLong", path, f"may not be more than {size} {unit}"))
    if "minLength" in schema and len(value) < schema["minLength"]:
        detail = f"{path} in body should be at least {schema['minLength']} chars long"
        errors.append(FieldError("FieldValueInvalid", path, detail, value))
    if "pattern" in schema and not re.search(schema["pattern"], value):
        detail = f"{path} in body should match '{schema['pattern']}'"
        errors.append(FieldError("FieldValueInvalid", path, detail, value))
    if schema.get("format") == "date-time" and not _is_date_time(value):
        detail = f'{path} in body must be of type date-time: "{value}"'
        errors.append(FieldError("FieldValueTypeInvalid", path, detail, value))
    return errors


def _is_date_time(value: str) -> bool:
    if not _DATE_TIME.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _validate_number(value: float, schema: Schema, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if "maximum" in schema:
        limit, exclusive = schema["maximum"], bool(schema.get("exclusiveMaximum"))
        if value > limit or (exclusive and value == limit):
            relation = "less than" if exclusive else "less than or equal to"
            detail = f"{path} in body should be {relation} {_num(limit)}"
            errors.append(FieldError("FieldValueInvalid", path, detail, value))
    if "minimum" in schema:
        limit, exclusive = schema["minimum"], bool(schema.get("exclusiveMinimum"))
        if value < limit or (exclusive and value == limit):
            relation = "greater than" if exclusive else "greater than or equal to"
            detail = f"{path} in body should be {relation} {_num(limit)}"
            errors.append(FieldError("FieldValueInvalid", path, detail, value))
    return errors


def _validate_array(value: list[Any], schema: Schema, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    items = schema.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(value):
            errors += validate(item, items, f"{path}[{index}]")
    if "minItems" in schema and len(value) < schema["minItems"]:
        detail = f"{path} in body should have at least {schema['minItems']} items"
        errors.append(FieldError("FieldValueInvalid", path, detail, len(value)))
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        size = schema["maxItems"]
        detail = f"must have at most {size} {'item' if size == 1 else 'items'}"
        errors.append(FieldError("FieldValueTooMany", path, detail, len(value)))
    return errors + _validate_list_type(value, schema, path)


def _validate_list_type(value: list[Any], schema: Schema, path: str) -> list[FieldError]:
    """x-kubernetes-list-type set/map invariants (apiextensions pkg/apiserver/schema/listtype)."""
    list_type = schema.get("x-kubernetes-list-type")
    keys: list[str] = schema.get("x-kubernetes-list-map-keys") or []
    seen: list[Any] = []
    errors: list[FieldError] = []
    for index, item in enumerate(value):
        if list_type == "set":
            identity: Any = item
        elif list_type == "map" and isinstance(item, dict):
            identity = {k: item[k] for k in keys if k in item}
        else:
            continue
        if identity in seen:
            errors.append(FieldError("FieldValueDuplicate", f"{path}[{index}]", "", identity))
        seen.append(identity)
    return errors


def _validate_object(value: dict[str, Any], schema: Schema, path: str) -> list[FieldError]:
    count = len(value)
    if "maxProperties" in schema and count > schema["maxProperties"]:
        size = schema["maxProperties"]
        detail = f"must have at most {size} {'item' if size == 1 else 'items'}"
        return [FieldError("FieldValueTooMany", path, detail, count)]
    if "minProperties" in schema and count < schema["minProperties"]:
        detail = f"{path} in body should have at least {schema['minProperties']} properties"
        return [FieldError("FieldValueInvalid", path, detail, count)]
    errors: list[FieldError] = []
    properties: dict[str, Schema] = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        if key in properties:
            if not (path == "" and key == "metadata"):  # ObjectMeta is validated by admission.py
                errors += validate(item, properties[key], child(path, key))
        elif isinstance(extra, dict):
            errors += validate(item, extra, child(path, key))
    for key in schema.get("required") or []:
        if key not in value:
            errors.append(FieldError("FieldValueRequired", child(path, key)))
    return errors


# ---------------------------------------------------------------------------------------------
# Structural schema rules (apiextensions-apiserver pkg/apiserver/schema/validation.go), the
# subset that matters for hand-written CRDs, plus this project's "every field is documented".

_FORBIDDEN: Final = ("$ref", "patternProperties", "dependencies", "definitions", "additionalItems")


def structural_problems(schema: Schema, path: str = "openAPIV3Schema") -> list[str]:
    """Problems that would make the apiserver reject the schema, or leave a field undocumented."""
    problems: list[str] = []
    int_or_string = bool(schema.get("x-kubernetes-int-or-string"))
    untyped_ok = int_or_string or schema.get("x-kubernetes-preserve-unknown-fields")
    if "type" not in schema and not untyped_ok:
        problems.append(f"{path}.type: Required value: must not be empty for specified fields")
    if "description" not in schema:
        problems.append(f"{path}.description: Required value (kubectl explain shows it)")
    problems += [f"{path}.{key}: Forbidden" for key in _FORBIDDEN if key in schema]
    if schema.get("uniqueItems"):
        problems.append(f"{path}.uniqueItems: Forbidden: uniqueItems cannot be set to true")
    if "properties" in schema and "additionalProperties" in schema:
        problems.append(f"{path}.additionalProperties: Forbidden: with properties")
    if schema.get("type") == "array" and not isinstance(schema.get("items"), dict):
        problems.append(f"{path}.items: Required value: must be specified for arrays")
    for variant in schema.get("anyOf", []) + schema.get("allOf", []) + schema.get("oneOf", []):
        bad = {"description", "default", "nullable", "x-kubernetes-validations"} & set(variant)
        if not int_or_string or set(variant) - {"type"} or bad:
            problems.append(f"{path}.anyOf: Forbidden: only int-or-string variants are supported")
    for name, sub in (schema.get("properties") or {}).items():
        problems += structural_problems(sub, f"{path}.properties[{name}]")
    if isinstance(schema.get("additionalProperties"), dict):
        problems += structural_problems(schema["additionalProperties"], f"{path}.additional")
    if isinstance(schema.get("items"), dict):
        problems += structural_problems(schema["items"], f"{path}.items")
    return problems
