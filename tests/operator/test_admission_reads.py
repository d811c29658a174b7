"""The webhook's consistent reads (KubeApi.list_migrations, MigrationReads) against a scripted
server: the LIST it sends, its bound, and how a burst of requests shares reads without ever
joining one that was already in flight when it arrived."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from alembic_operator.controller.admissionreads import MigrationReads
from alembic_operator.controller.kubeapi import KubeApi
from alembic_operator.errors import ApiUnavailable
from tests.operator.test_kubeapi import Server, creds, server, status

__all__ = ["server"]
LIST_PATH = "/apis/alembic-operator.dev/v1alpha1/namespaces/ns/databasemigrations"


class Gated:
    """Answers each LIST with the number of LISTs received so far, once ``opened`` is set."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.received = 0
        self.arrived = asyncio.Event()

    async def answer(self, _request: web.Request) -> web.Response:
        self.received += 1
        number = self.received
        self.arrived.set()
        await self.opened.wait()
        return web.json_response({"items": [{"metadata": {"name": f"read-{number}"}}]})


async def test_list_migrations_is_a_plain_list_bounded_in_time(server: Server) -> None:
    gated = Gated()
    server.answer = gated.answer
    api = KubeApi(creds(server.url))
    try:
        # The server holds the answer; the bound leaves the request time to reach it under load.
        with pytest.raises(ApiUnavailable, match=r"no answer within 1s"):
            await api.list_migrations("ns", within=1.0)
        assert gated.received == 1
        gated.opened.set()
        items = await api.list_migrations("ns", within=5)
    finally:
        await api.close()
    assert items == [{"metadata": {"name": "read-2"}}]
    # No resourceVersion: the API server answers from its latest state (a consistent read).
    assert [(m, p) for m, p, *_ in server.seen] == [("GET", LIST_PATH)] * 2


async def test_a_burst_shares_reads_but_never_one_already_in_flight(server: Server) -> None:
    gated = Gated()
    server.answer = gated.answer
    api = KubeApi(creds(server.url))
    reads = MigrationReads(api, within=10)
    try:
        first = asyncio.create_task(reads.read("ns"))
        await gated.arrived.wait()  # read 1 is in flight: later requests must not join it
        later = [asyncio.create_task(reads.read("ns")) for _ in range(5)]
        await asyncio.sleep(0)  # let them queue
        assert gated.received == 1  # they wait for read 1 to end, then share read 2
        gated.opened.set()
        answers = await asyncio.gather(first, *later)
    finally:
        await reads.close()
        await api.close()
    names = [[item["metadata"]["name"] for item in answer] for answer in answers]
    assert names == [["read-1"], *[["read-2"]] * 5]
    assert gated.received == 2


async def test_a_failed_read_fails_every_request_waiting_for_it(server: Server) -> None:
    server.answer = lambda _r: status(503, "ServiceUnavailable")
    api = KubeApi(creds(server.url))
    reads = MigrationReads(api, within=10)
    try:
        results = await asyncio.gather(
            *(reads.read("ns") for _ in range(3)), return_exceptions=True
        )
    finally:
        await reads.close()
        await api.close()
    assert [type(r) for r in results] == [ApiUnavailable] * 3
    assert len(server.seen) == 1  # one read, shared


async def test_a_request_waits_no_longer_than_its_bound(server: Server) -> None:
    gated = Gated()
    server.answer = gated.answer
    api = KubeApi(creds(server.url))
    reads = MigrationReads(api, within=0.3)
    try:
        with pytest.raises(ApiUnavailable, match=r"no answer within 0\.3s"):
            await reads.read("ns")
        gated.opened.set()
        assert [i["metadata"]["name"] for i in await reads.read("ns")] == ["read-2"]
    finally:
        await reads.close()
        await api.close()
