"""Label and field selectors, as the apiserver parses and applies them.

:func:`parse_label_selector` understands the full string syntax of ``labelSelector``
(``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x,y)``, ``a``, ``!a``, ``a>1``, ``a<1``);
:func:`selector_from_dict` builds the same from a ``LabelSelector`` object (``matchLabels`` and
``matchExpressions``, as in a Job's or Deployment's ``spec.selector``). :func:`parse_field_selector`
understands ``fieldSelector`` for ``metadata.name``/``metadata.namespace`` plus the few
per-resource fields the real apiserver indexes (``involvedObject.*`` on events, ``status.phase``
on pods, ...); any other field is a 400, as on a real cluster.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

from alembic_operator.emulation.errors import ApiError, bad_request

Selector = Callable[[Mapping[str, Any]], bool]


@dataclasses.dataclass(frozen=True)
class Requirement:
    """One label requirement: ``key op values``."""

    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a label set satisfies this requirement."""
        present = self.key in labels
        value = labels.get(self.key)
        match self.op:
            case "=" | "in":
                return present and value in self.values
            case "!=" | "notin":
                return not present or value not in self.values
            case "exists":
                return present
            case "!":
                return not present
            case "gt" | "lt":
                try:
                    number = int(str(value))
                except ValueError:
                    return False
                bound = int(self.values[0])
                return number > bound if self.op == "gt" else number < bound
        return False  # pragma: no cover - ops are validated at parse time


_TOKEN = re.compile(r"\s*(==|!=|=|!|\(|\)|,|<|>|[^\s,()=!<>]+)")
_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:  # pragma: no cover - the pattern accepts any non-space character
            raise bad_request(f"unable to parse requirement: {text!r}")
        tokens.append(match.group(1))
        position = match.end()
    return tokens


def _check_key(key: str, text: str) -> str:
    if not _KEY.match(key) or len(key.rpartition("/")[2]) > 63:
        raise bad_request(f"unable to parse requirement: invalid label key {key!r} in {text!r}")
    return key


def _check_value(value: str, text: str) -> str:
    if len(value) > 63 or not _VALUE.match(value):
        raise bad_request(f"unable to parse requirement: invalid label value {value!r} in {text!r}")
    return value


class _Parser:
    """A recursive-descent parser over the selector's words."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.words = _tokens(text)
        self.position = 0

    def error(self, what: str) -> ApiError:
        return bad_request(f"unable to parse requirement: {what} in {self.text!r}")

    def peek(self) -> str:
        return self.words[self.position] if self.position < len(self.words) else ","

    def take(self) -> str:
        if self.position >= len(self.words):
            raise self.error("unexpected end")
        self.position += 1
        return self.words[self.position - 1]

    def requirement(self) -> Requirement:
        first = self.take()
        if first == "!":
            return Requirement(_check_key(self.take(), self.text), "!")
        key = _check_key(first, self.text)
        operator = self.peek()
        if operator == ",":
            return Requirement(key, "exists")
        self.take()
        if operator in {"=", "==", "!="}:
            value = self.take() if self.peek() != "," else ""
            op = "!=" if operator == "!=" else "="
            return Requirement(key, op, (_check_value(value, self.text),))
        if operator in {"in", "notin"}:
            if self.take() != "(":
                raise self.error("expected '('")
            values: list[str] = []
            while (word := self.take()) != ")":
                if word != ",":
                    values.append(_check_value(word, self.text))
            return Requirement(key, operator, tuple(values))
        if operator in {"<", ">"}:
            bound = self.take()
            if not bound.lstrip("-").isdigit():
                raise self.error(f"{bound!r} is not an integer")
            return Requirement(key, "gt" if operator == ">" else "lt", (bound,))
        raise self.error(f"unexpected {operator!r}")

    def parse(self) -> list[Requirement]:
        requirements = []
        while self.position < len(self.words):
            requirements.append(self.requirement())
            if self.position < len(self.words) and self.take() != ",":
                raise self.error("expected ','")
        return requirements


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse a ``labelSelector`` query string; raises a 400 :class:`ApiError` if malformed."""
    if not text or not text.strip():
        return []
    return _Parser(text).parse()


def selector_from_dict(selector: Mapping[str, Any] | None) -> list[Requirement]:
    """Requirements of a ``LabelSelector`` object (``matchLabels`` + ``matchExpressions``)."""
    if not selector:
        return []
    result = [
        Requirement(k, "=", (str(v),)) for k, v in (selector.get("matchLabels") or {}).items()
    ]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expression in selector.get("matchExpressions") or []:
        op = ops.get(str(expression.get("operator")))
        if op is None:
            raise bad_request(f"{expression.get('operator')!r} is not a valid selector operator")
        values = tuple(str(v) for v in expression.get("values") or ())
        result.append(Requirement(str(expression.get("key")), op, values))
    return result


def labels_match(requirements: list[Requirement], obj: Mapping[str, Any]) -> bool:
    """Whether an object's ``metadata.labels`` satisfy all requirements."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(r.matches(labels) for r in requirements)


# Fields the real apiserver can select on, per (group, plural), besides metadata.name/namespace.
_EVENT_FIELDS = {
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
}
_SELECTABLE_FIELDS: dict[tuple[str, str], set[str]] = {
    ("", "events"): _EVENT_FIELDS,
    ("events.k8s.io", "events"): {
        "regarding.kind",
        "regarding.namespace",
        "regarding.name",
        "regarding.uid",
        "regarding.apiVersion",
        "reason",
        "reportingController",
        "type",
    },
    ("", "pods"): {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    },
    ("", "secrets"): {"type"},
    ("", "namespaces"): {"status.phase"},
    ("", "nodes"): {"spec.unschedulable"},
    ("batch", "jobs"): {"status.successful"},
    ("apps", "replicasets"): {"status.replicas"},
}


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The string value of a selectable field (``""`` when absent), as the apiserver renders it."""
    if path == "source":
        path = "source.component"
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclasses.dataclass(frozen=True)
class FieldRequirement:
    """One field requirement: ``path = value`` or ``path != value``."""

    path: str
    equal: bool
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        """Whether the object satisfies this requirement."""
        return (field_value(obj, self.path) == self.value) == self.equal


def parse_field_selector(text: str | None, group: str, plural: str) -> list[FieldRequirement]:
    """Parse a ``fieldSelector`` for a resource; unknown fields are a 400 as on a real cluster."""
    if not text or not text.strip():
        return []
    allowed = {"metadata.name", "metadata.namespace"} | _SELECTABLE_FIELDS.get(
        (group, plural), set()
    )
    result: list[FieldRequirement] = []
    for term in text.split(","):
        match = re.fullmatch(r"\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*", term)
        if match is None:
            raise bad_request(f"invalid selector: {text!r}; can't understand {term!r}")
        path, op, value = match.groups()
        if path not in allowed:
            raise ApiError(
                400,
                "BadRequest",
                f'"{path}" is not a known field selector: '
                'only "metadata.name", "metadata.namespace"',
                {},
            )
        result.append(FieldRequirement(path, op != "!=", value))
    return result


def fields_match(requirements: list[FieldRequirement], obj: Mapping[str, Any]) -> bool:
    """Whether an object satisfies all field requirements."""
    return all(r.matches(obj) for r in requirements)
