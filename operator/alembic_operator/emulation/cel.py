"""``x-kubernetes-validations``: the CEL rules of a CRD, compiled and evaluated with cel-python.

Role: compile every rule of an ``openAPIV3Schema`` once, then evaluate them over an already
pruned, defaulted and schema-valid object the way kube-apiserver does: ``self`` is the value at the
rule's node (typed from the schema: integer → int, number → double, date-time → timestamp, objects
with properties → field access, maps and lists as such), ``oldSelf`` the correlated old value on
update. Rules that mention ``oldSelf`` (transition rules) are skipped when there is no old value,
as on create. ``message``, ``messageExpression``, ``reason`` and ``fieldPath`` are honoured.

Not reproduced: the apiserver's cost estimation and runtime cost budget, ``optionalOldSelf``
(rejected at compile time), the Kubernetes CEL extension libraries (strings, lists, regex find,
quantity, url, ip, ...) and validation ratcheting. It must not do I/O or import alembic/sqlalchemy.

Speed: a rule's text is compiled once per process (programs are stateless, shared by rule sets),
and a rule set remembers the values its rules at a node accepted: rules are pure functions of
``self`` and ``oldSelf``, so an unchanged value (the spec, on each status write) is accepted again
without evaluating; a value that failed is evaluated again, so every error is reported as before.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any, Final

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError

from alembic_operator.emulation.jsontree import is_plain_json
from alembic_operator.emulation.schemas import OMIT, FieldError, Schema, child

# CEL reserved words and Kubernetes' escaping of property names (apiserver/pkg/cel/escaping.go).
_RESERVED: Final = frozenset(
    {
        "true", "false", "null", "in", "as", "break", "const", "continue", "else", "for",
        "function", "if", "import", "let", "loop", "package", "namespace", "return", "var",
        "void", "while",
    }
)  # fmt: skip
_IDENTIFIER = re.compile(r"^[a-zA-Z_.\-/][a-zA-Z0-9_.\-/]*$")
_ENVIRONMENT = celpy.Environment()


def escape(name: str) -> str | None:
    """The CEL field name of an object property, or None when CEL cannot address it."""
    if name in _RESERVED:
        return f"__{name}__"
    if not _IDENTIFIER.match(name):
        return None
    for raw, escaped in (("__", "__underscores__"), (".", "__dot__"), ("-", "__dash__")):
        name = name.replace(raw, escaped)
    return name.replace("/", "__slash__")


@dataclass(frozen=True)
class Rule:
    """One compiled ``x-kubernetes-validations`` entry."""

    source: str
    program: celpy.Runner
    uses_old_self: bool
    message: str
    message_program: celpy.Runner | None
    reason: str
    field_path: str


@functools.lru_cache(maxsize=1024)
def _compile(text: str) -> tuple[celpy.Runner, bool]:
    ast = _ENVIRONMENT.compile(text)
    idents = {str(tok) for node in ast.find_data("ident") for tok in node.children}
    return _ENVIRONMENT.program(ast), "oldSelf" in idents


def _compile_rule(spec: dict[str, Any], where: str) -> Rule:
    if spec.get("optionalOldSelf"):
        raise ValueError(f"{where}: optionalOldSelf is not supported by this emulator")
    program, uses_old_self = _compile(spec["rule"])
    message_program = None
    if spec.get("messageExpression"):
        message_program, _ = _compile(spec["messageExpression"])
    message = (spec.get("message") or "").strip() or f"failed rule: {spec['rule'].strip()}"
    return Rule(
        source=(spec.get("message") or spec["rule"]).strip(),
        program=program,
        uses_old_self=uses_old_self,
        message=message,
        message_program=message_program,
        reason=spec.get("reason") or "FieldValueInvalid",
        field_path=spec.get("fieldPath") or "",
    )


def to_cel(value: Any, schema: Schema) -> Any:
    """A JSON value as the CEL value the apiserver would bind for this schema node."""
    if value is None:
        return None
    if schema.get("x-kubernetes-int-or-string") or schema.get(
        "x-kubernetes-preserve-unknown-fields"
    ):
        return json_to_cel(value)
    kind = schema.get("type")
    if kind == "object" and isinstance(value, dict):
        props: dict[str, Schema] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        entries: dict[Any, Any] = {}
        for key, item in value.items():
            if key in props and (name := escape(key)) is not None:
                entries[celtypes.StringType(name)] = to_cel(item, props[key])
            elif isinstance(extra, dict):
                entries[celtypes.StringType(key)] = to_cel(item, extra)
        return celtypes.MapType(entries)
    if kind == "array" and isinstance(value, list):
        return celtypes.ListType([to_cel(item, schema.get("items") or {}) for item in value])
    if kind == "string" and schema.get("format") == "date-time":
        return celtypes.TimestampType(value)
    if kind == "string" and schema.get("format") == "duration":
        return celtypes.DurationType(value)
    if kind == "number":
        return celtypes.DoubleType(float(value))
    return json_to_cel(value)


def _run(program: celpy.Runner, activation: dict[str, Any]) -> tuple[Any, str | None]:
    """Evaluate; returns (value, error text). cel-python raises some errors and returns others."""
    try:
        result = program.evaluate(activation)
    except CELEvalError as error:
        return None, str(error.args[0] if error.args else error)
    except (TypeError, ValueError, KeyError, ZeroDivisionError, OverflowError) as error:
        return None, str(error)
    if isinstance(result, CELEvalError):
        return None, str(result.args[0] if result.args else result)
    return result, None


class RuleSet:
    """All rules of one schema, compiled once; ``check`` evaluates them over an object."""

    def __init__(self, root: Schema) -> None:
        self._root = root  # keeps the node ids below stable
        self._rules: dict[int, list[Rule]] = {}
        self._accepted: dict[tuple[int, str, str | None], None] = {}  # see _memo_key
        problems: list[str] = []
        self._collect(root, "openAPIV3Schema", problems)
        if problems:
            raise ValueError("invalid x-kubernetes-validations: " + "; ".join(problems))

    def __len__(self) -> int:
        return sum(len(rules) for rules in self._rules.values())

    def _collect(self, schema: Schema, where: str, problems: list[str]) -> None:
        compiled = []
        for index, spec in enumerate(schema.get("x-kubernetes-validations") or []):
            try:
                compiled.append(_compile_rule(spec, f"{where}.x-kubernetes-validations[{index}]"))
            except Exception as error:  # lark raises many kinds of parse errors
                problems.append(f"{where}.x-kubernetes-validations[{index}]: {error}")
        if compiled:
            self._rules[id(schema)] = compiled
        for name, sub in (schema.get("properties") or {}).items():
            self._collect(sub, f"{where}.properties[{name}]", problems)
        for key in ("additionalProperties", "items"):
            if isinstance(schema.get(key), dict):
                self._collect(schema[key], f"{where}.{key}", problems)

    def check(self, value: Any, old: Any, *, has_old: bool) -> list[FieldError]:
        """Evaluate every rule over a whole object (old is the stored object on update)."""
        return self._walk(value, old, self._root, "", has_old=has_old)

    def _walk(
        self, value: Any, old: Any, schema: Schema, path: str, *, has_old: bool
    ) -> list[FieldError]:
        if value is None:
            return []  # the apiserver only validates non-null values
        errors = self._evaluate(value, old, schema, path, has_old=has_old)
        props: dict[str, Schema] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        if isinstance(value, dict):
            old_map = old if has_old and isinstance(old, dict) else {}
            for key, item in value.items():
                if key in props:
                    sub, here = props[key], child(path, key)
                elif isinstance(extra, dict):
                    sub, here = extra, f"{path}[{key}]"
                else:
                    continue
                errors += self._walk(item, old_map.get(key), sub, here, has_old=key in old_map)
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            keys: list[str] = schema.get("x-kubernetes-list-map-keys") or []
            by_key: dict[str, Any] = {}
            if has_old and isinstance(old, list) and schema.get("x-kubernetes-list-type") == "map":
                by_key = {_identity(item, keys): item for item in old if isinstance(item, dict)}
            for index, item in enumerate(value):
                identity = _identity(item, keys) if isinstance(item, dict) else ""
                errors += self._walk(
                    item,
                    by_key.get(identity),
                    schema["items"],
                    f"{path}[{index}]",
                    has_old=identity in by_key,
                )
        return errors

    def _evaluate(
        self, value: Any, old: Any, schema: Schema, path: str, *, has_old: bool
    ) -> list[FieldError]:
        rules = self._rules.get(id(schema), [])
        if not rules:
            return []
        if path == "":  # at the resource root, metadata shows only name and generateName
            meta = value.get("metadata") or {}
            value = {
                **value,
                "metadata": {k: meta[k] for k in ("name", "generateName") if k in meta},
            }
        key = _memo_key(id(schema), value, old, has_old and any(r.uses_old_self for r in rules))
        if key is not None and key in self._accepted:
            return []
        activation: dict[str, Any] = {"self": to_cel(value, schema)}
        if has_old:
            activation["oldSelf"] = to_cel(old, schema)
        kind = schema.get("type", "")
        errors: list[FieldError] = []
        for rule in rules:
            if rule.uses_old_self and not has_old:
                continue  # transition rules need a correlated old value
            result, failure = _run(rule.program, activation)
            if failure is not None:
                detail = f"{failure} evaluating rule: {rule.source}"
                errors.append(FieldError("FieldValueInvalid", path or "<nil>", detail, kind))
                continue
            if isinstance(result, celtypes.BoolType) and bool(result):
                continue
            errors.append(self._failure(rule, activation, value, schema, path))
        if key is not None and not errors:
            if len(self._accepted) >= _MEMO_SIZE:
                self._accepted.clear()
            self._accepted[key] = None
        return errors

    @staticmethod
    def _failure(
        rule: Rule, activation: dict[str, Any], value: Any, schema: Schema, path: str
    ) -> FieldError:
        detail = rule.message
        if rule.message_program is not None:
            text, failure = _run(rule.message_program, activation)
            if failure is None and isinstance(text, str) and text.strip() and "\n" not in text:
                detail = text.strip()
        if rule.field_path.startswith("."):
            path = child(path, rule.field_path[1:])
        elif rule.field_path:
            path += rule.field_path
        shown = OMIT if schema.get("type") in ("object", "array") else value
        if rule.reason in ("FieldValueRequired", "FieldValueForbidden"):
            return FieldError(rule.reason, path or "<nil>", detail)
        if rule.reason == "FieldValueDuplicate":
            return FieldError(rule.reason, path or "<nil>", "", shown)
        return FieldError("FieldValueInvalid", path or "<nil>", detail, shown)


_MEMO_SIZE: Final = 4096


def _memo_key(
    node: int, value: Any, old: Any, with_old: bool
) -> tuple[int, str, str | None] | None:
    """What the rules at a node see: its id, ``self`` and (for transition rules) ``oldSelf``.

    None (no memo) unless the values are plain JSON, whose text then identifies them exactly.
    """
    if not is_plain_json(value) or (with_old and not is_plain_json(old)):
        return None
    return node, json.dumps(value), json.dumps(old) if with_old else None


def _identity(item: dict[str, Any], keys: list[str]) -> str:
    return repr([item.get(key) for key in keys])
