"""kopf persistence for on.event handlers only: nothing kept, nothing copied, and a guard."""

from __future__ import annotations

import importlib
from typing import Any

import kopf
import pytest

from alembic_operator.controller import handlers, webhooks
from alembic_operator.controller.persistence import NoDiffBase, NoProgress, has_change_handlers

BODY = kopf.Body(
    {
        "apiVersion": "alembic-operator.dev/v1alpha1",
        "kind": "DatabaseMigration",
        "metadata": {"name": "shop", "namespace": "default", "annotations": {"a": "b"}},
        "spec": {"revision": "head"},
    }
)


def test_no_diff_base_is_built_or_stored() -> None:
    storage = NoDiffBase()
    patch = kopf.Patch()
    assert storage.build(body=BODY) == {}
    assert storage.fetch(body=BODY) is None
    storage.store(body=BODY, patch=patch, essence=storage.build(body=BODY))
    assert not patch


def test_no_progress_is_kept_and_an_essence_is_not_copied() -> None:
    storage = NoProgress()
    patch = kopf.Patch()
    essence: Any = {"spec": {"revision": "head"}}
    assert storage.clear(essence=essence) is essence
    assert storage.fetch(key=kopf.HandlerId("h"), body=BODY) is None
    storage.touch(body=BODY, patch=patch, value="x")
    storage.purge(key=kopf.HandlerId("h"), body=BODY, patch=patch)
    assert not patch


def _registry_with(decorator: str) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    register = getattr(kopf.on, decorator)
    register("alembic-operator.dev", "v1alpha1", "databasemigrations", registry=registry)(
        lambda **_: None
    )
    return registry


@pytest.mark.parametrize(
    ("decorator", "needs_persistence"),
    [
        pytest.param("event", False, id="on-event"),
        pytest.param("create", True, id="on-create"),
        pytest.param("update", True, id="on-update"),
        pytest.param("delete", True, id="on-delete"),
        pytest.param("daemon", True, id="daemon"),
    ],
)
def test_change_handlers_are_detected(decorator: str, needs_persistence: bool) -> None:
    assert has_change_handlers(_registry_with(decorator)) is needs_persistence


def _operator_registry() -> kopf.OperatorRegistry:
    """The operator's handlers, registered afresh into a registry of their own.

    Importing a module registers its handlers into kopf's default registry of that moment, once
    per process: which registry holds them would depend on which test imported them first (and
    on registries other tests set). Reloading them into a new registry does not.
    """
    registry = kopf.OperatorRegistry()
    previous = kopf.get_default_registry()
    kopf.set_default_registry(registry)
    try:
        for module in (handlers, webhooks):
            importlib.reload(module)
    finally:
        kopf.set_default_registry(previous)
    return registry


def test_the_operator_registers_no_change_handler() -> None:
    registry = _operator_registry()
    assert registry._watching.get_all_handlers(), "the operator's on.event handlers are missing"
    assert not has_change_handlers(registry)
