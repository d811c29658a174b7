"""The migrations of each namespace, as the gate needs them: a view of the migration store.

A Deployment event must find the migrations gating that Deployment (by name or selector), and
the admission webhook must apply the rule without an API call: both read this index. It holds
nothing of its own: it reads the :class:`~alembic_operator.controller.caches.Store` of migration
bodies (``KubeApi.migrations``, fed by the watch, the API's answers and the status just
written) and the typed migration the store memoises per body (parsed once per version). So the
index follows the one cache policy: a status the reconciler just wrote is not replaced by an
older watch event, a deleted migration leaves it with its DELETED event or, when the watch
missed that, with the next resync. Every entry is read, however long since it was confirmed:
a quiet migration still gates (the resync re-lists it rather than letting it lapse).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from alembic_operator.controller.caches import Store
from alembic_operator.core.gates import selects
from alembic_operator.model.migrations import Migration, parse_migration
from alembic_operator.model.spec import InvalidMigration


def parse_or_none(body: Mapping[str, Any]) -> Migration | None:
    """The typed migration, or ``None`` for an invalid one (it gates nothing)."""
    try:
        return parse_migration(body)
    except InvalidMigration:
        return None


class GateIndex:
    """namespace -> migration name -> the typed migration of the newest body held."""

    def __init__(
        self,
        store: Store[dict[str, Any]],
        *,
        parse: Callable[[Mapping[str, Any]], Migration | None] = parse_or_none,
    ) -> None:
        self._store = store
        self._parse = parse

    def get(self, namespace: str, name: str) -> Migration | None:
        return self._store.derived((namespace, name), self._parse)

    def migrations(self, namespace: str) -> dict[str, Migration]:
        """Every valid migration of ``namespace`` by name (what the pod gate decides from)."""
        found = {name: self.get(namespace, name) for name, _ in self._store.entries(namespace)}
        return {name: m for name, m in found.items() if m is not None}

    def gating(self, namespace: str, name: str, labels: Mapping[str, str]) -> list[Migration]:
        """The migrations whose gate covers the Deployment ``name`` (any gate mode)."""
        return [
            m for m in self.migrations(namespace).values() if selects(m.spec.gate, name, labels)
        ]
