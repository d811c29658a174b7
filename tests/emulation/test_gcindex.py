"""The garbage collector's index (gcindex.py) and the collection it drives, end to end."""

from __future__ import annotations

from typing import Any

import pytest

from alembic_operator.emulation.apiserver import ApiServer
from alembic_operator.emulation.collector import collect_garbage
from alembic_operator.emulation.store import Store
from tests.emulation.helpers import CONFIGMAPS, MERGE, WIDGETS, Client, eventually, widget

CM = ("", "configmaps")
W = ("example.com", "widgets")


def _obj(name: str, uid: str, *owners: str, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "default", "uid": uid}
    if owners:
        meta["ownerReferences"] = [{"kind": "Widget", "name": o, "uid": o} for o in owners]
    if deleting:
        meta["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    return {"metadata": meta}


def _at(name: str) -> tuple[tuple[str, str], tuple[str, str]]:
    return (CM, ("default", name))


# Each step: ("write", storage key, object) or ("remove", storage key, object).
# Expected: (dependents of "o1", orphaned, terminating) after the steps.
INDEX_CASES: dict[str, tuple[list[tuple[str, Any, dict[str, Any]]], Any]] = {
    "dependent of a live owner": (
        [("write", W, _obj("o1", "o1")), ("write", CM, _obj("d", "d", "o1"))],
        ([_at("d")], [], []),
    ),
    "dependent before its owner exists": (
        [("write", CM, _obj("d", "d", "o1"))],
        ([_at("d")], [_at("d")], []),
    ),
    "owner created after its dependent": (
        [("write", CM, _obj("d", "d", "o1")), ("write", W, _obj("o1", "o1"))],
        ([_at("d")], [], []),
    ),
    "owner removed": (
        [
            ("write", W, _obj("o1", "o1")),
            ("write", CM, _obj("d", "d", "o1")),
            ("remove", W, _obj("o1", "o1")),
        ],
        ([_at("d")], [_at("d")], []),
    ),
    "reference added later by an update": (
        [
            ("write", W, _obj("o1", "o1")),
            ("remove", W, _obj("o1", "o1")),
            ("write", CM, _obj("d", "d")),
            ("write", CM, _obj("d", "d", "o1")),
        ],
        ([_at("d")], [_at("d")], []),
    ),
    "reference dropped by an update": (
        [("write", CM, _obj("d", "d", "o1")), ("write", CM, _obj("d", "d"))],
        ([], [], []),
    ),
    "dependent removed": (
        [("write", CM, _obj("d", "d", "o1")), ("remove", CM, _obj("d", "d", "o1"))],
        ([], [], []),
    ),
    "two owners, one missing": (
        [("write", W, _obj("o2", "o2")), ("write", CM, _obj("d", "d", "o1", "o2"))],
        ([_at("d")], [_at("d")], []),
    ),
    "being deleted, then gone": (
        [
            ("write", CM, _obj("a", "a")),
            ("write", CM, _obj("a", "a", deleting=True)),
            ("write", CM, _obj("b", "b", deleting=True)),
            ("remove", CM, _obj("b", "b", deleting=True)),
        ],
        ([], [], [_at("a")]),
    ),
}


@pytest.mark.parametrize(("steps", "expected"), INDEX_CASES.values(), ids=INDEX_CASES.keys())
def test_the_index_follows_writes_and_removals(
    steps: list[tuple[str, Any, dict[str, Any]]], expected: Any
) -> None:
    store = Store()
    for action, key, obj in steps:
        store.write(key, obj) if action == "write" else store.remove(key, obj)
    garbage = store.garbage
    assert (garbage.dependents("o1"), garbage.orphaned(), garbage.terminating()) == expected


def _ref(owner: dict[str, Any]) -> dict[str, Any]:
    meta = owner["metadata"]
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "name": meta["name"],
        "uid": meta["uid"],
    }


async def _gone(client: Client, name: str) -> bool:
    return (await client.get(f"{CONFIGMAPS}/{name}"))[0] == 404


async def test_owner_deletion_collects_every_dependent_and_nothing_else(client: Client) -> None:
    owner = await client.ok("POST", WIDGETS, widget("owner"))
    other = await client.ok("POST", WIDGETS, widget("other"))
    for name, owners in (("d1", [owner]), ("d2", [owner]), ("kept", [other]), ("plain", [])):
        meta: dict[str, Any] = {"name": name}
        if owners:
            meta["ownerReferences"] = [_ref(o) for o in owners]
        await client.ok("POST", CONFIGMAPS, {"metadata": meta})
    await client.ok("DELETE", f"{WIDGETS}/owner", params={"propagationPolicy": "Background"})
    await eventually(lambda: _gone(client, "d1"))
    await eventually(lambda: _gone(client, "d2"))
    for name in ("kept", "plain"):
        assert not await _gone(client, name)


async def test_a_reference_to_a_deleted_owner_added_by_update_is_collected(
    client: Client,
) -> None:
    owner = await client.ok("POST", WIDGETS, widget("owner"))
    await client.ok("DELETE", f"{WIDGETS}/owner")
    await client.ok("POST", CONFIGMAPS, {"metadata": {"name": "late"}})
    patch = {"metadata": {"ownerReferences": [_ref(owner)]}}
    await client.ok("PATCH", f"{CONFIGMAPS}/late", patch, content_type=MERGE)
    await eventually(lambda: _gone(client, "late"))


async def test_a_reference_removed_before_the_owner_goes_protects_the_dependent(
    api: ApiServer, client: Client
) -> None:
    owner = await client.ok("POST", WIDGETS, widget("owner"))
    meta = {"name": "freed", "ownerReferences": [_ref(owner)]}
    await client.ok("POST", CONFIGMAPS, {"metadata": meta})
    unowned = {"metadata": {"ownerReferences": None}}
    await client.ok("PATCH", f"{CONFIGMAPS}/freed", unowned, content_type=MERGE)
    await client.ok("DELETE", f"{WIDGETS}/owner")
    collect_garbage(api.registry)
    assert not await _gone(client, "freed")


async def test_a_vanished_owner_is_dropped_when_another_remains(
    api: ApiServer, client: Client
) -> None:
    gone = await client.ok("POST", WIDGETS, widget("gone"))
    stays = await client.ok("POST", WIDGETS, widget("stays"))
    meta = {"name": "shared", "ownerReferences": [_ref(gone), _ref(stays)]}
    await client.ok("POST", CONFIGMAPS, {"metadata": meta})
    await client.ok("DELETE", f"{WIDGETS}/gone")
    collect_garbage(api.registry)
    shared = await client.ok("GET", f"{CONFIGMAPS}/shared")
    assert [r["name"] for r in shared["metadata"]["ownerReferences"]] == ["stays"]


async def test_orphan_propagation_keeps_dependents_without_the_reference(
    api: ApiServer, client: Client
) -> None:
    owner = await client.ok("POST", WIDGETS, widget("owner"))
    await client.ok(
        "POST", CONFIGMAPS, {"metadata": {"name": "d", "ownerReferences": [_ref(owner)]}}
    )
    await client.ok("DELETE", f"{WIDGETS}/owner", params={"propagationPolicy": "Orphan"})
    collect_garbage(api.registry)
    assert (await client.get(f"{WIDGETS}/owner"))[0] == 404
    assert "ownerReferences" not in (await client.ok("GET", f"{CONFIGMAPS}/d"))["metadata"]


async def test_collection_does_not_scan_the_store(
    api: ApiServer, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pods come and go by the thousand in a burst: a pass must not look at every object."""
    owner = await client.ok("POST", WIDGETS, widget("owner"))
    await client.ok(
        "POST", CONFIGMAPS, {"metadata": {"name": "d", "ownerReferences": [_ref(owner)]}}
    )

    def scan() -> None:
        raise AssertionError("the collector scanned the store")

    monkeypatch.setattr(api.registry.store, "all_items", scan)
    monkeypatch.setattr(api.registry.store, "items", scan)
    await client.ok("DELETE", f"{WIDGETS}/owner")
    collect_garbage(api.registry)
    assert await _gone(client, "d")
