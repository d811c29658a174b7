"""What the garbage collector (:mod:`.collector`) has to look at, kept up to date by the store.

:class:`GarbageIndex` is fed by :class:`~.store.Store` on every write and removal, so a
collection pass looks only at the objects it could act on instead of scanning the whole store
(which made a burst of pod creations quadratic):

- the dependents of each owner uid (every uid named in an object's ``ownerReferences``);
- the owner uids that are named by some dependent but not stored: their dependents are the ones
  to delete or to drop references from;
- the objects being deleted (``deletionTimestamp`` set): the ones whose ``orphan``,
  ``foregroundDeletion``, Namespace or CRD finalizers the collector runs.

Objects are named by :data:`Location` (storage key, object key); sets are returned sorted so a
pass is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

StorageKey = tuple[str, str]  # (group, plural)
ObjectKey = tuple[str, str]  # (namespace or "", name)
Location = tuple[StorageKey, ObjectKey]


def owner_uids(obj: dict[str, Any] | None) -> set[str]:
    """The uids an object's ownerReferences name (as the collector compares them: ``str``)."""
    if obj is None:
        return set()
    return {str(ref.get("uid")) for ref in obj["metadata"].get("ownerReferences") or []}


class GarbageIndex:
    """Dependents by owner uid, owners that are missing, objects being deleted.

    ``present(uid)`` tells whether an object with that uid is stored (the store's uid index).
    """

    def __init__(self, present: Callable[[str], bool]) -> None:
        self._present = present
        self._dependents: dict[str, set[Location]] = {}
        self._missing: set[str] = set()  # owner uids with dependents but no stored object
        self._terminating: set[Location] = set()

    def written(self, location: Location, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        """``new`` replaced ``old`` (None: created) at ``location``."""
        old_uid = None if old is None else old["metadata"].get("uid")
        new_uid = new["metadata"].get("uid")
        if old_uid and old_uid != new_uid:
            self._vanished(old_uid)
        if new_uid:
            self._missing.discard(new_uid)
        before, after = owner_uids(old), owner_uids(new)
        self._unlink(location, before - after)
        for uid in after - before:
            self._dependents.setdefault(uid, set()).add(location)
            if not self._present(uid):
                self._missing.add(uid)
        if new["metadata"].get("deletionTimestamp"):
            self._terminating.add(location)
        else:
            self._terminating.discard(location)

    def removed(self, location: Location, old: dict[str, Any]) -> None:
        """``old`` was removed from ``location``."""
        self._unlink(location, owner_uids(old))
        self._terminating.discard(location)
        uid = old["metadata"].get("uid")
        if uid:
            self._vanished(uid)

    def _vanished(self, uid: str) -> None:
        if uid in self._dependents and not self._present(uid):
            self._missing.add(uid)

    def _unlink(self, location: Location, uids: Iterable[str]) -> None:
        for uid in uids:
            dependents = self._dependents.get(uid)
            if dependents is None:
                continue
            dependents.discard(location)
            if not dependents:
                del self._dependents[uid]
                self._missing.discard(uid)

    def dependents(self, uid: str) -> list[Location]:
        """Where the objects naming ``uid`` in their ownerReferences are."""
        return sorted(self._dependents.get(uid, ()))

    def orphaned(self) -> list[Location]:
        """Objects with at least one ownerReference to a uid that is not stored."""
        return sorted({loc for uid in self._missing for loc in self._dependents.get(uid, ())})

    def terminating(self) -> list[Location]:
        """Objects with a ``deletionTimestamp``."""
        return sorted(self._terminating)
