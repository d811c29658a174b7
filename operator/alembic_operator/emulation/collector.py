"""The garbage collector and the namespace/CRD cleanup controllers of the emulated cluster.

:func:`collect_garbage` runs to a fixed point (the apiserver wrapper schedules it in the
background after deletions and after writes that add ownerReferences); it looks only at the
objects the store's :class:`~.gcindex.GarbageIndex` names (being deleted; depending on a
missing owner), never scans the store:

- a dependent whose ownerReferences all point to uids that no longer exist is deleted
  (background propagation; its own finalizers still apply); references to vanished owners are
  dropped when other owners remain;
- an owner deleted with ``propagationPolicy=Orphan`` (the ``orphan`` finalizer; also the default
  for batch/v1 Jobs) loses its references from the dependents, then the finalizer is removed;
- an owner deleted with ``Foreground`` (``foregroundDeletion``) gets its dependents deleted and
  goes away when none remain (``blockOwnerDeletion`` is not distinguished);
- a terminating Namespace has all its content deleted and is removed once empty;
- a terminating CustomResourceDefinition has all its custom objects deleted, then stops being
  served.
"""

from __future__ import annotations

import logging
from typing import Any

from alembic_operator.emulation.catalog import CRD_TYPE
from alembic_operator.emulation.errors import ApiError
from alembic_operator.emulation.gcindex import Location
from alembic_operator.emulation.jsontree import clone
from alembic_operator.emulation.registry import Registry
from alembic_operator.emulation.store import StorageKey

logger = logging.getLogger(__name__)

_CRD_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"


def _stored(
    registry: Registry, locations: list[Location]
) -> list[tuple[StorageKey, dict[str, Any]]]:
    found = [(key, registry.store.get(key, *name)) for key, name in locations]
    return [(key, obj) for key, obj in found if obj is not None]


def _dependents(registry: Registry, uid: str) -> list[tuple[StorageKey, dict[str, Any]]]:
    return _stored(registry, registry.store.garbage.dependents(uid))


def _rewrite(registry: Registry, key: StorageKey, obj: dict[str, Any], **meta: Any) -> None:
    """Write changed metadata fields (None removes) through the registry's update path."""
    rtype = registry.type_for(key)
    if rtype is None:
        return
    body = registry.get(rtype, obj["metadata"].get("namespace"), obj["metadata"]["name"])
    for field, value in meta.items():
        if value is None:
            body["metadata"].pop(field, None)
        else:
            body["metadata"][field] = value
    try:
        registry.update(rtype, obj["metadata"].get("namespace"), obj["metadata"]["name"], body)
    except ApiError as exc:  # e.g. deleted meanwhile
        logger.debug("GC could not update %s: %s", obj["metadata"]["name"], exc.message)


def _delete(registry: Registry, key: StorageKey, obj: dict[str, Any]) -> None:
    rtype = registry.type_for(key)
    if rtype is None or obj["metadata"].get("deletionTimestamp"):
        return
    try:
        registry.delete(
            rtype,
            obj["metadata"].get("namespace"),
            obj["metadata"]["name"],
            propagation="Background",
        )
    except ApiError as exc:
        logger.debug("GC could not delete %s: %s", obj["metadata"]["name"], exc.message)


def _drop_finalizer(
    registry: Registry, key: StorageKey, obj: dict[str, Any], finalizer: str
) -> None:
    finalizers = [f for f in obj["metadata"].get("finalizers") or [] if f != finalizer]
    _rewrite(registry, key, obj, finalizers=finalizers or None)


def _finalize_owner(registry: Registry, key: StorageKey, obj: dict[str, Any]) -> bool:
    finalizers = obj["metadata"].get("finalizers") or []
    uid = obj["metadata"]["uid"]
    if "orphan" in finalizers:
        for dep_key, dependent in _dependents(registry, uid):
            refs = [r for r in dependent["metadata"]["ownerReferences"] if r.get("uid") != uid]
            _rewrite(registry, dep_key, dependent, ownerReferences=refs or None)
        _drop_finalizer(registry, key, obj, "orphan")
        return True
    if "foregroundDeletion" in finalizers:
        dependents = _dependents(registry, uid)
        for dep_key, dependent in dependents:
            _delete(registry, dep_key, dependent)
        if not _dependents(registry, uid):
            _drop_finalizer(registry, key, obj, "foregroundDeletion")
            return True
        return bool(dependents)
    return False


def _finalize_container(registry: Registry, key: StorageKey, obj: dict[str, Any]) -> bool:
    """Empty a terminating Namespace or CRD, then let it go."""
    if key == ("", "namespaces") and (obj.get("spec") or {}).get("finalizers"):
        namespace = obj["metadata"]["name"]
        content = [
            (k, o)
            for k, o in registry.store.all_items()
            if o["metadata"].get("namespace") == namespace
        ]
        for item_key, item in content:
            _delete(registry, item_key, item)
        if any(registry.store.get(k, namespace, o["metadata"]["name"]) for k, o in content):
            return False
        rtype = registry.type_for(key)
        assert rtype is not None
        body = clone(obj)
        body["spec"]["finalizers"] = []
        registry.update(rtype, None, namespace, body)
        return True
    if key == CRD_TYPE.storage_key and _CRD_FINALIZER in (obj["metadata"].get("finalizers") or []):
        spec = obj.get("spec") or {}
        storage = (spec.get("group", ""), (spec.get("names") or {}).get("plural", ""))
        content = [(storage, o) for o in registry.store.items(storage)]
        for item_key, item in content:
            _delete(registry, item_key, item)
        if registry.store.items(storage):
            return False
        _drop_finalizer(registry, key, obj, _CRD_FINALIZER)
        return True
    return False


def collect_garbage(registry: Registry, *, max_rounds: int = 50) -> None:
    """Run the collector until nothing changes (or ``max_rounds``).

    Each round looks at the objects being deleted and at the dependents of missing owners
    (from :attr:`.Store.garbage`), the only ones it can act on.
    """
    for _ in range(max_rounds):
        before = registry.store.resource_version
        garbage = registry.store.garbage
        for key, obj in _stored(registry, sorted({*garbage.terminating(), *garbage.orphaned()})):
            meta = obj["metadata"]
            current = registry.store.get(key, meta.get("namespace"), meta["name"])
            if current is None or current["metadata"].get("uid") != meta.get("uid"):
                continue  # deleted earlier in this round
            meta = current["metadata"]  # it may have changed earlier in this round
            if meta.get("deletionTimestamp"):
                _finalize_owner(registry, key, current) or _finalize_container(
                    registry, key, current
                )
                continue
            refs = meta.get("ownerReferences") or []
            if not refs:
                continue
            alive = [ref for ref in refs if registry.store.by_uid(str(ref.get("uid"))) is not None]
            if not alive:
                _delete(registry, key, current)
            elif len(alive) < len(refs):
                _rewrite(registry, key, current, ownerReferences=alive)
        if registry.store.resource_version == before:
            return
