"""PATCH bodies: content-type negotiation, JSON merge patch, JSON patch, strategic merge patch.

- ``application/merge-patch+json``: RFC 7386; the body must be a JSON object (else 400).
- ``application/json-patch+json``: RFC 6902 (add, remove, replace, move, copy, test); the body
  must be a JSON array (else 400, as ``jsonpatch.DecodePatch`` fails on the real apiserver); an
  operation that cannot apply, including a failed ``test``, is a 422.
- ``application/strategic-merge-patch+json`` (built-in kinds only; 415 for custom resources, as on
  a real cluster): an **approximation** of strategic merge: a merge patch in which lists of objects
  with a known merge key (containers, env, volumes, volumeMounts, ports, conditions,
  ownerReferences, ...) are merged element by element, ``finalizers`` are merged as a set, and the
  directives ``$patch: delete|replace``, ``$deleteFromPrimitiveList/<f>`` and
  ``$setElementOrder/<f>`` (ignored: order is kept) are understood. Other lists are replaced. It
  does not read the Go struct tags, so a list the real apiserver would merge under another key
  may be replaced here.
- ``application/apply-patch+yaml`` (server-side apply): an **approximation**: the applied
  configuration is merged into the object like a merge patch (no managedFields, no conflicts, no
  removal of fields dropped from the configuration); a missing object is created.
"""

from __future__ import annotations

import json
from typing import Any

from alembic_operator.emulation.errors import ApiError, bad_request, patch_failed
from alembic_operator.emulation.jsontree import clone

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
_GO_MAP = "type map[string]interface {}"


def _json_kind(value: Any) -> str:
    """How Go's encoding/json names a JSON value's type in its errors."""
    names = {dict: "object", list: "array", str: "string", bool: "bool", type(None): "null"}
    return names.get(type(value), "number")


ALL_PATCH_TYPES = [JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH]
CUSTOM_PATCH_TYPES = [JSON_PATCH, MERGE_PATCH, APPLY_PATCH]


def media_type(content_type: str | None) -> str:
    """The media type without its parameters (``; charset=utf-8``), lower-cased."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def decode(body: bytes, *, yaml_allowed: bool = False) -> Any:
    """Decode a request body as JSON (or YAML for apply patches); malformed bodies are a 400."""
    try:
        return json.loads(body or b"null")
    except ValueError as exc:
        if yaml_allowed:
            try:
                import yaml  # noqa: PLC0415 - only apply patches need it

                return yaml.safe_load(body)
            except Exception:  # noqa: S110 - reported as the JSON error below
                pass
        raise bad_request(f"error decoding the request body: {exc}") from exc


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch; returns a new value, the inputs are not modified."""
    if not isinstance(patch, dict):
        return clone(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --- RFC 6902 ---------------------------------------------------------------------------------


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise patch_failed(f"invalid JSON pointer: {path!r}")
    if path == "":
        return []
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], part: str, *, adding: bool) -> int:
    if part == "-" and adding:
        return len(container)
    if not part.isdigit() or (part.startswith("0") and part != "0"):
        raise patch_failed(f"invalid array index: {part!r}")
    index = int(part)
    if index > len(container) or (index == len(container) and not adding):
        raise patch_failed(f"array index out of bounds: {index}")
    return index


def _parent(doc: Any, tokens: list[str], path: str) -> Any:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, adding=False)]
        else:
            raise patch_failed(f"doc is missing path: {path}")
    return node


def _get(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, path)
    if isinstance(parent, dict) and tokens[-1] in parent:
        return parent[tokens[-1]]
    if isinstance(parent, list):
        return parent[_index(parent, tokens[-1], adding=False)]
    raise patch_failed(f"doc is missing path: {path}")


def _remove(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        raise patch_failed("cannot remove the whole document")
    parent = _parent(doc, tokens, path)
    if isinstance(parent, dict) and tokens[-1] in parent:
        return parent.pop(tokens[-1])
    if isinstance(parent, list):
        return parent.pop(_index(parent, tokens[-1], adding=False))
    raise patch_failed(f"unable to remove nonexistent key: {tokens[-1]}: missing value")


def _add(doc: Any, path: str, value: Any, *, replace: bool = False) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, path)
    if isinstance(parent, dict):
        if replace and tokens[-1] not in parent:
            raise patch_failed(f"replace operation does not apply: doc is missing key: {path}")
        parent[tokens[-1]] = value
    elif isinstance(parent, list):
        index = _index(parent, tokens[-1], adding=not replace)
        if replace:
            parent[index] = value
        else:
            parent.insert(index, value)
    else:
        raise patch_failed(f"doc is missing path: {path}")
    return doc


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: numbers compare by value, booleans are not numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def json_patch(target: Any, operations: Any) -> Any:
    """Apply RFC 6902 operations to a deep copy of ``target``; 400 if the body is not a patch."""
    if not isinstance(operations, list) or not all(isinstance(op, dict) for op in operations):
        kind = _json_kind(operations)
        raise bad_request(f"json: cannot unmarshal {kind} into Go value of type jsonpatch.Patch")
    doc = clone(target)
    for operation in operations:
        op = operation.get("op")
        path = operation.get("path")
        if op in {"add", "replace", "test"} and "value" not in operation:
            raise patch_failed(f"missing value for {op} operation on {path}")
        value = clone(operation.get("value"))
        if op == "add":
            doc = _add(doc, path, value)
        elif op == "replace":
            doc = _add(doc, path, value, replace=True)
        elif op == "remove":
            _remove(doc, path)
        elif op == "test":
            try:
                current = _get(doc, path)
            except ApiError:
                current = None
            if not _json_equal(current, value):
                raise patch_failed(f"testing value {path} failed: test failed")
        elif op in {"move", "copy"}:
            source = operation.get("from")
            moved = _remove(doc, source) if op == "move" else clone(_get(doc, source))
            doc = _add(doc, path, moved)
        else:
            raise patch_failed(f"Unexpected kind: {op}")
    return doc


# --- strategic merge (approximation) ----------------------------------------------------------

MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "readinessGates": "conditionType",
    "resourceClaims": "name",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
}
MERGED_PRIMITIVE_LISTS = {"finalizers"}


def _merge_list(field: str, target: list[Any], patch: list[Any]) -> list[Any]:
    key = MERGE_KEYS.get(field)
    if field in MERGED_PRIMITIVE_LISTS:
        return list(target) + [item for item in patch if item not in target]
    if key is None or not all(isinstance(item, dict) for item in [*target, *patch]):
        return clone(patch)
    if any(item.get("$patch") == "replace" for item in patch):
        return [clone(i) for i in patch if i.get("$patch") != "replace"]
    result = [clone(item) for item in target]
    for item in patch:
        position = next(
            (i for i, existing in enumerate(result) if existing.get(key) == item.get(key)), None
        )
        if item.get("$patch") == "delete":
            if position is not None:
                result.pop(position)
        elif position is None:
            result.append(strategic_merge_patch({}, item))
        else:
            result[position] = strategic_merge_patch(result[position], item)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """An approximation of a strategic merge patch (see the module docstring)."""
    if not isinstance(patch, dict):
        raise bad_request(f"json: cannot unmarshal {_json_kind(patch)} into Go value of {_GO_MAP}")
    if patch.get("$patch") == "replace":
        return {k: clone(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return {}
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in {"$patch", "$retainKeys"}:
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [v for v in result.get(field) or [] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            result[key] = strategic_merge_patch(result.get(key), value)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_list(key, result[key], value)
        elif isinstance(value, list):
            result[key] = _merge_list(key, [], value)
        else:
            result[key] = clone(value)
    return result


def apply_patch(patch_type: str, target: dict[str, Any], body: Any) -> dict[str, Any]:
    """Apply a decoded patch body of a known type to ``target``; the result must be an object."""
    if patch_type == JSON_PATCH:
        result = json_patch(target, body)
    elif patch_type in {MERGE_PATCH, APPLY_PATCH}:
        if not isinstance(body, dict):
            raise bad_request(
                f"json: cannot unmarshal {_json_kind(body)} into Go value of {_GO_MAP}"
            )
        result = merge_patch(target, body)
    elif patch_type == STRATEGIC_MERGE_PATCH:
        result = strategic_merge_patch(target, body)
    else:  # pragma: no cover - callers negotiate the type first
        raise ValueError(patch_type)
    if not isinstance(result, dict):
        raise patch_failed("the patched document is not a JSON object")
    return result
