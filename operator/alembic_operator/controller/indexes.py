"""The migrations of each namespace, as the gate needs them (fed by watch events).

A Deployment event must find the migrations gating that Deployment (by name or selector), and
the admission webhook must apply the rule without an API call: both read this index. It holds
the typed migration (spec and status) per namespace; a newer resourceVersion replaces an older
one, so the status the reconciler just wrote is not overwritten by an older watch event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from alembic_operator.core.gates import selects
from alembic_operator.model.migrations import Migration


def _newer(candidate: str, current: str) -> bool:
    """Whether ``candidate`` is a later resourceVersion (numeric ones compare as numbers)."""
    if candidate.isdigit() and current.isdigit():
        return int(candidate) >= int(current)
    return True  # opaque versions: the latest write wins


@dataclass(frozen=True)
class _Entry:
    migration: Migration
    resource_version: str


class GateIndex:
    """namespace -> migration name -> the newest typed migration seen."""

    def __init__(self) -> None:
        self._by_namespace: dict[str, dict[str, _Entry]] = {}

    def put(self, migration: Migration, *, resource_version: str) -> None:
        entries = self._by_namespace.setdefault(migration.ref.namespace, {})
        current = entries.get(migration.ref.name)
        if (
            current is None
            or current.migration.ref.uid != migration.ref.uid
            or _newer(resource_version, current.resource_version)
        ):
            entries[migration.ref.name] = _Entry(migration, resource_version)

    def drop(self, namespace: str, name: str) -> None:
        entries = self._by_namespace.get(namespace, {})
        entries.pop(name, None)
        if not entries:
            self._by_namespace.pop(namespace, None)

    def get(self, namespace: str, name: str) -> Migration | None:
        entry = self._by_namespace.get(namespace, {}).get(name)
        return entry.migration if entry else None

    def migrations(self, namespace: str) -> dict[str, Migration]:
        """Every migration of ``namespace`` by name (what the pod gate decides from)."""
        return {name: e.migration for name, e in self._by_namespace.get(namespace, {}).items()}

    def gating(self, namespace: str, name: str, labels: Mapping[str, str]) -> list[Migration]:
        """The migrations whose gate covers the Deployment ``name`` (any gate mode)."""
        return [
            e.migration
            for e in self._by_namespace.get(namespace, {}).values()
            if selects(e.migration.spec.gate, name, labels)
        ]
