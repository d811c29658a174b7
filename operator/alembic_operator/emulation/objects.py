"""Helpers on object bodies shared by the registry's write paths (no storage access).

Decoding a request body against the resource it is sent to (kind, apiVersion, namespace checks:
400 on mismatch), generated names, canonical key order, timestamps, and the update-time rules on
``metadata``: stale resourceVersion or foreign uid → 409, system fields carried over from the
stored object, no finalizers added to an object being deleted, and when an object is finally gone.
"""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Callable
from typing import Any

from alembic_operator.emulation import errors
from alembic_operator.emulation.catalog import ResourceType
from alembic_operator.emulation.jsontree import clone

NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # what the apiserver's generateName draws from
SYSTEM_FIELDS = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                 "generation", "name", "namespace")  # fmt: skip
CLIENT_IGNORED_FIELDS = (*SYSTEM_FIELDS[:5], "managedFields", "selfLink")


def now(clock: Callable[[], datetime.datetime]) -> str:
    """An RFC 3339 timestamp with second precision, as metav1.Time serialises."""
    return clock().astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def random_name(generate_name: str) -> str:
    """``generateName`` plus five random characters (the prefix cut to keep within 63)."""
    return str(generate_name)[:58] + "".join(secrets.choice(NAME_ALPHABET) for _ in range(5))


def ordered(obj: dict[str, Any]) -> dict[str, Any]:
    """The object with apiVersion, kind and metadata first."""
    head = ("apiVersion", "kind", "metadata")
    result = {key: obj[key] for key in head if key in obj}
    result.update((key, value) for key, value in obj.items() if key not in head)
    return result


def decode(
    rtype: ResourceType, body: Any, namespace: str | None, *, copy: bool = True
) -> dict[str, Any]:
    """A copy of a request body checked against the resource and the URL's namespace.

    ``copy=False``: the body itself, whose top level and ``metadata`` dict the caller owns.
    """
    if not isinstance(body, dict):
        raise errors.bad_request(f"Object 'Kind' is missing in '{str(body)[:200]}'")
    obj = clone(body) if copy else body
    if obj.get("kind", rtype.kind) != rtype.kind:
        raise errors.bad_request(
            f"the kind in the data ({obj['kind']}) does not match the expected kind ({rtype.kind})"
        )
    if obj.get("apiVersion", rtype.api_version) != rtype.api_version:
        raise errors.bad_request(
            f"the API version in the data ({obj['apiVersion']}) does not match the expected "
            f"API version ({rtype.api_version})"
        )
    obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise errors.bad_request("metadata must be an object")
    if not rtype.namespaced:
        meta.pop("namespace", None)
    elif namespace and meta.get("namespace") and meta["namespace"] != namespace:
        raise errors.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    else:
        meta["namespace"] = namespace or meta.get("namespace") or "default"
    return obj


def carry_system_metadata(rtype: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Check an update's preconditions (409) and keep the stored object's system fields."""
    meta, old_meta = new["metadata"], old["metadata"]
    name = old_meta["name"]
    if meta.get("resourceVersion") and meta["resourceVersion"] != old_meta["resourceVersion"]:
        raise errors.conflict(rtype.plural, rtype.group, name, errors.STALE)
    if meta.get("uid") and meta["uid"] != old_meta["uid"]:
        why = (
            f"Precondition failed: UID in precondition: {meta['uid']}, "
            f"UID in object meta: {old_meta['uid']}"
        )
        raise errors.conflict(rtype.plural, rtype.group, name, why)
    for field in SYSTEM_FIELDS:
        if field in old_meta:
            meta[field] = old_meta[field]
        else:
            meta.pop(field, None)
    meta.pop("managedFields", None)
    meta["resourceVersion"] = old_meta["resourceVersion"]


def check_finalizers(rtype: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> None:
    """No finalizer may be added to an object being deleted (422)."""
    if not old["metadata"].get("deletionTimestamp"):
        return
    added = set(new["metadata"].get("finalizers") or []) - set(
        old["metadata"].get("finalizers") or []
    )
    if added:
        detail = "no new finalizers can be added if the object is being deleted"
        error = errors.FieldError("metadata.finalizers", "Forbidden", detail, sorted(added))
        raise errors.invalid(rtype.kind, rtype.group, old["metadata"]["name"], [error])


def check_delete_preconditions(
    rtype: ResourceType, obj: dict[str, Any], preconditions: dict[str, Any] | None
) -> None:
    """DeleteOptions.preconditions (uid, resourceVersion) must match (409)."""
    meta = obj["metadata"]
    for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
        wanted = (preconditions or {}).get(field)
        if wanted and wanted != meta.get(field):
            why = (
                f"Precondition failed: {label} in precondition: {wanted}, "
                f"{label} in object meta: {meta.get(field)}"
            )
            raise errors.conflict(rtype.plural, rtype.group, meta["name"], why)


def is_released(rtype: ResourceType, obj: dict[str, Any]) -> bool:
    """Whether an object being deleted has no finalizers left (and so goes away now)."""
    if not obj["metadata"].get("deletionTimestamp") or obj["metadata"].get("finalizers"):
        return False
    is_namespace = (rtype.group, rtype.plural) == ("", "namespaces")
    return not (is_namespace and (obj.get("spec") or {}).get("finalizers"))
