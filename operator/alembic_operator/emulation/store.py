"""The emulator's etcd: objects, one global resourceVersion counter, and a bounded event log.

Every write takes the next resourceVersion and appends exactly one watch event (ADDED, MODIFIED,
DELETED) carrying the object as written and the object it replaced, so a watch can resume from
any retained resourceVersion with no gap and can tell when an object enters or leaves a label
selector. Objects are stored per (group, plural) - all versions of a resource share them - and
indexed by uid for ownerReference lookups and, for the garbage collector, by owner uid and
deletion state (:attr:`Store.garbage`, a :class:`~.gcindex.GarbageIndex`). Stored objects are
never mutated: writers put new dicts, readers must copy before changing. All methods are
synchronous (one event loop, no locks needed); :meth:`Store.changed` gives an
:class:`asyncio.Event` that is set on the next write.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from alembic_operator.emulation.errors import gone
from alembic_operator.emulation.gcindex import GarbageIndex, ObjectKey, StorageKey

__all__ = ["ObjectKey", "StorageKey", "Store", "WatchEvent", "object_key"]


@dataclasses.dataclass(frozen=True)
class WatchEvent:
    """One change: ``type`` is ADDED, MODIFIED or DELETED; ``old`` is the replaced object."""

    rv: int
    type: str
    storage_key: StorageKey
    obj: dict[str, Any]
    old: dict[str, Any] | None


def object_key(obj: dict[str, Any]) -> ObjectKey:
    """``(namespace or "", name)`` of an object."""
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "", meta["name"])


class Store:
    """Objects, the resourceVersion counter and the event log."""

    def __init__(self, *, max_events: int = 20000) -> None:
        self._objects: dict[StorageKey, dict[ObjectKey, dict[str, Any]]] = {}
        self._uids: dict[str, tuple[StorageKey, ObjectKey]] = {}
        self._rv = 0
        self._events: list[WatchEvent] = []
        self._first_rv = 1  # the resourceVersion of self._events[0] (or the next one if empty)
        self._max_events = max_events
        self._changed: asyncio.Event | None = None
        self.garbage = GarbageIndex(self._uids.__contains__)

    @property
    def resource_version(self) -> int:
        """The latest resourceVersion (of the last write)."""
        return self._rv

    def changed(self) -> asyncio.Event:
        """An event set by the next write (take it before checking for events, then await it)."""
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def wake(self) -> None:
        """Wake every waiter (watches re-check their stop conditions)."""
        self._notify()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def get(
        self, storage_key: StorageKey, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        """The stored object, or None. Do not mutate it."""
        return self._objects.get(storage_key, {}).get((namespace or "", name))

    def by_uid(self, uid: str) -> dict[str, Any] | None:
        """The stored object with this uid, or None."""
        location = self._uids.get(uid)
        return None if location is None else self._objects[location[0]][location[1]]

    def items(self, storage_key: StorageKey, namespace: str | None = None) -> list[dict[str, Any]]:
        """Stored objects of a resource (in one namespace if given), by namespace and name."""
        objects = self._objects.get(storage_key, {})
        return [objects[key] for key in sorted(objects) if namespace is None or key[0] == namespace]

    def all_items(self) -> list[tuple[StorageKey, dict[str, Any]]]:
        """Every stored object with its storage key."""
        return [(sk, obj) for sk, objects in self._objects.items() for obj in objects.values()]

    def write(self, storage_key: StorageKey, obj: dict[str, Any]) -> dict[str, Any]:
        """Store a new or changed object under the next resourceVersion; emits ADDED/MODIFIED."""
        key = object_key(obj)
        old = self.get(storage_key, *key)
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self._objects.setdefault(storage_key, {})[key] = obj
        uid = obj["metadata"].get("uid")
        if uid:
            self._uids[uid] = (storage_key, key)
        self.garbage.written((storage_key, key), old, obj)
        self._append(WatchEvent(self._rv, "MODIFIED" if old else "ADDED", storage_key, obj, old))
        return obj

    def remove(self, storage_key: StorageKey, final: dict[str, Any]) -> dict[str, Any]:
        """Delete an object under the next resourceVersion; emits DELETED with ``final``."""
        key = object_key(final)
        old = self._objects.get(storage_key, {}).pop(key, None)
        if old is None:
            raise KeyError(key)
        self._uids.pop(old["metadata"].get("uid", ""), None)
        self.garbage.removed((storage_key, key), old)
        self._rv += 1
        final["metadata"]["resourceVersion"] = str(self._rv)
        self._append(WatchEvent(self._rv, "DELETED", storage_key, final, old))
        return final

    def _append(self, event: WatchEvent) -> None:
        self._events.append(event)
        if len(self._events) > self._max_events:
            dropped = len(self._events) // 2
            del self._events[:dropped]
        self._first_rv = self._events[0].rv
        self._notify()

    def events_after(self, rv: int) -> list[WatchEvent]:
        """All events with a resourceVersion above ``rv``; a 410 if some were already dropped."""
        if rv + 1 < self._first_rv:
            raise gone(rv, self._first_rv - 1)
        start = max(0, rv + 1 - self._first_rv)
        return self._events[start:]
