"""The request log, fault injection, and kmock reactions taking precedence over emulation."""

from __future__ import annotations

import kmock

from alembic_operator.emulation.apiserver import ApiServer
from tests.emulation.helpers import CONFIGMAPS, MERGE, WIDGETS, Client, widget


async def test_every_request_is_logged_with_its_outcome(api: ApiServer, client: Client) -> None:
    api.reset_calls()
    await client.ok("POST", WIDGETS, widget("w"))
    await client.ok("PATCH", f"{WIDGETS}/w/status", {"status": {"a": 1}}, content_type=MERGE)
    await client.get(f"{WIDGETS}/missing")
    await client.ok("GET", WIDGETS)
    summary = [
        (c.method, c.verb, c.plural, c.subresource, c.status, c.content_type) for c in api.calls
    ]
    assert summary == [
        ("POST", "create", "widgets", None, 201, "application/json"),
        ("PATCH", "patch", "widgets", "status", 200, MERGE),
        ("GET", "get", "widgets", None, 404, ""),
        ("GET", "list", "widgets", None, 200, ""),
    ]
    assert [c.verb for c in api.writes] == ["create", "patch"]
    assert api.count(verb="patch", plural="widgets", subresource="status") == 1
    assert api.calls[0].path == WIDGETS and api.calls[0].namespace == "default"


async def test_a_fault_before_the_write(api: ApiServer, client: Client) -> None:
    api.inject_fault(verb="create", plural="configmaps", status=500, message="etcd is down")
    status, body = await client.post(CONFIGMAPS, {"metadata": {"name": "c"}})
    assert (status, body["message"]) == (500, "etcd is down")
    assert (await client.get(f"{CONFIGMAPS}/c"))[0] == 404
    assert (await client.post(CONFIGMAPS, {"metadata": {"name": "c"}}))[0] == 201  # used up


async def test_a_fault_after_the_write_is_a_lost_response(api: ApiServer, client: Client) -> None:
    fault = api.inject_fault(verb="create", plural="configmaps", status=504, after_write=True)
    status, _ = await client.post(CONFIGMAPS, {"metadata": {"name": "c"}})
    assert status == 504
    assert fault.hits == 1
    assert (await client.get(f"{CONFIGMAPS}/c"))[0] == 200
    status, body = await client.post(CONFIGMAPS, {"metadata": {"name": "c"}})  # the client's retry
    assert (status, body["reason"]) == (409, "AlreadyExists")


async def test_kmock_reactions_override_the_emulation(api: ApiServer, client: Client) -> None:
    api["get", kmock.resource("example.com/v1/widgets")] << 418 << {"intercepted": True}
    assert await client.get(WIDGETS) == (418, {"intercepted": True})
    assert (await client.post(WIDGETS, widget("w")))[0] == 201  # other requests are emulated
    assert len(api["get", kmock.resource("example.com/v1/widgets")]) == 1


async def test_a_reaction_added_later_still_wins_and_sees_earlier_requests(
    api: ApiServer, client: Client
) -> None:
    # Served by the emulation directly (no user reaction yet), yet recorded in kmock's history.
    assert (await client.get(WIDGETS))[0] == 200
    assert (await client.get(WIDGETS))[0] == 200
    widgets = kmock.resource("example.com/v1/widgets")
    assert len(api["get", widgets]) == 2
    api["get", widgets] << 503 << {"intercepted": True}
    assert await client.get(WIDGETS) == (503, {"intercepted": True})
    assert (await client.post(WIDGETS, widget("w")))[0] == 201  # not matched: emulated
    assert len(api["get", widgets]) == 3
