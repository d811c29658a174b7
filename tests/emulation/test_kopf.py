"""The real kopf operator against the emulator: handle a custom object, patch status, Events."""

from __future__ import annotations

import asyncio

import pytest
from kopf.testing import KopfRunner

from alembic_operator.emulation.apiserver import ApiServer
from tests.emulation import kopf_operator
from tests.emulation.helpers import WIDGETS, Client, eventually, widget
from tests.emulation.kopf_operator import EMULATOR_URL
from tests.operator.harness import fast_settings, fresh_registry


async def test_kopf_handles_a_custom_object_and_posts_an_event(
    api: ApiServer, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(EMULATOR_URL, api.base_url)
    args = ["run", "-A", "--standalone"]
    runner = KopfRunner(
        args, registry=fresh_registry(kopf_operator), settings=fast_settings(), timeout=30
    )
    runner.__enter__()
    try:
        await client.ok("POST", WIDGETS, widget("w", size=3))

        async def status_patched() -> bool:
            status = (await client.ok("GET", f"{WIDGETS}/w")).get("status", {})
            return bool(
                status.get("phase") == "Seen" and status.get("widget_created") == {"size": 3}
            )

        async def event_with_reason(reason: str) -> bool:
            events = await client.ok(
                "GET",
                "/api/v1/namespaces/default/events",
                params={"fieldSelector": "involvedObject.name=w"},
            )
            return any(e["reason"] == reason for e in events["items"])

        await eventually(status_patched, within=20)
        await eventually(lambda: event_with_reason("Seen"), within=20)

        async def settled() -> bool:  # kopf records the handled state, then stops writing
            annotations = (await client.ok("GET", f"{WIDGETS}/w"))["metadata"].get(
                "annotations", {}
            )
            return "kopf.zalando.org/last-handled-configuration" in annotations

        await eventually(settled, within=20)
        settled_writes = api.count(plural="widgets", verb="patch")

        # Deletion: kopf's finalizer (added with a JSON patch guarded by a resourceVersion test)
        # holds the object until the deletion handler has run.
        marked = await client.ok("DELETE", f"{WIDGETS}/w")
        assert marked["metadata"]["finalizers"] == ["kopf.zalando.org/KopfFinalizerMarker"]

        async def gone() -> bool:
            return (await client.get(f"{WIDGETS}/w"))[0] == 404

        await eventually(gone, within=20)
        await eventually(lambda: event_with_reason("Gone"), within=20)
    finally:
        await asyncio.to_thread(runner.__exit__, None, None, None)

    assert runner.exit_code == 0, runner.output
    assert "Traceback" not in runner.output, runner.output
    kopf_calls = [c for c in api.calls if c.user_agent.startswith("kopf/")]
    assert len(kopf_calls) > 5
    failed = [(c.method, c.path, c.status) for c in kopf_calls if c.status >= 400]
    assert not failed, failed
    # Creation: finalizer, annotations, status; deletion: the finalizer's removal. No retries.
    assert settled_writes <= 4, [(c.method, c.path, c.content_type) for c in api.writes]
    assert api.count(plural="widgets", verb="patch") <= settled_writes + 1
    assert api.count(verb="create", plural="events") == 2


async def test_kopf_peering_works_when_not_standalone(
    api: ApiServer, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(EMULATOR_URL, api.base_url)
    api.install_kopf_peering()
    settings = fast_settings()
    settings.peering.standalone = False
    settings.peering.mandatory = True
    settings.peering.name = "default"
    path = "/apis/kopf.dev/v1/clusterkopfpeerings/default"
    runner = KopfRunner(["run", "-A"], registry=fresh_registry(kopf_operator), settings=settings)
    runner.__enter__()
    try:

        async def peer_registered() -> bool:
            return bool((await client.ok("GET", path)).get("status"))

        await eventually(peer_registered, within=20)
        await client.ok("POST", WIDGETS, widget("w", size=1))

        async def handled() -> bool:
            status = (await client.ok("GET", f"{WIDGETS}/w")).get("status", {})
            return bool(status.get("phase") == "Seen")

        await eventually(handled, within=20)
    finally:
        await asyncio.to_thread(runner.__exit__, None, None, None)
    assert runner.exit_code == 0, runner.output
    kopf_calls = [c for c in api.calls if c.user_agent.startswith("kopf/")]
    assert not [(c.method, c.path, c.status) for c in kopf_calls if c.status >= 400]
    assert not (await client.ok("GET", path)).get("status")  # kopf removed itself on exit
