"""kopf persistence for an operator of ``on.event`` handlers only: nothing to keep or copy.

kopf keeps a diff-base (the last handled spec) and per-handler progress for its change handlers
(``on.create``/``on.update``/``on.delete``). This operator has none: the reconciler keeps its own
state in the status. kopf still builds a diff-base and "clears" the progress of every watch
event it processes, deep-copying the body three times on the way (a quarter of the operator's
CPU in a burst of 1000 migrations, docs/benchmarks.md). These storages keep and copy nothing.

They are right only while no change handler exists: ``handlers.start`` installs them and
refuses to start if kopf's registry holds one. They must not write to the API.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import kopf


class NoDiffBase(kopf.DiffBaseStorage):
    """No diff-base: every event's essence is empty, and none was ever stored."""

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[kopf.FieldSpec] | None = None
    ) -> kopf.BodyEssence:
        return cast(kopf.BodyEssence, {})

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


class NoProgress(kopf.ProgressStorage):
    """No handler progress: nothing is recorded, and an essence needs no cleaning."""

    def fetch(self, *, key: kopf.HandlerId, body: kopf.Body) -> kopf.ProgressRecord | None:
        return None

    def store(
        self,
        *,
        key: kopf.HandlerId,
        record: kopf.ProgressRecord,
        body: kopf.Body,
        patch: kopf.Patch,
    ) -> None:
        return None

    def purge(self, *, key: kopf.HandlerId, body: kopf.Body, patch: kopf.Patch) -> None:
        return None

    def touch(self, *, body: kopf.Body, patch: kopf.Patch, value: str | None) -> None:
        return None

    def clear(self, *, essence: kopf.BodyEssence) -> kopf.BodyEssence:
        return essence


def has_change_handlers(registry: kopf.OperatorRegistry) -> bool:
    """Whether any handler would need kopf's diff-base or progress (anything but on.event)."""
    return bool(registry._changing.get_all_handlers() or registry._spawning.get_all_handlers())
