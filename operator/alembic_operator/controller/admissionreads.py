"""Consistent reads of a namespace's migrations for the admission webhook, shared in bursts.

Role: before the webhook admits a new Deployment template it must know every migration that
exists *now* (its watch-fed index may not have seen one created a moment ago), so it reads them
from the API server (:meth:`~alembic_operator.controller.kubeapi.KubeApi.list_migrations`).
A burst of requests in one namespace (``kubectl apply -f dir/``, a Helm release, Argo CD) shares
reads instead of sending one LIST each: a request joins a read that has not been sent yet, never
one already in flight (that one may have started before the request's migration was created),
so each answer is still newer than the request that waits for it. Per namespace at most one
read is in flight and one waits to be sent.

Must not: cache answers beyond the requests waiting for them, parse them, or decide anything.
"""

from __future__ import annotations

import asyncio
from typing import Any

from alembic_operator.controller.kubeapi import KubeApi
from alembic_operator.errors import ApiUnavailable

Bodies = list[dict[str, Any]]


class MigrationReads:
    """``await reads.read(namespace)``: the namespace's migrations, read after the call began."""

    def __init__(self, api: KubeApi, *, within: float) -> None:
        self._api = api
        self._within = within
        self._queued: dict[str, asyncio.Future[Bodies]] = {}  # not sent yet: joinable
        self._sending: dict[str, asyncio.Task[None]] = {}  # in flight: not joinable
        self._tasks: set[asyncio.Task[None]] = set()

    async def read(self, namespace: str) -> Bodies:
        """The migrations of ``namespace``; :class:`ApiUnavailable` past ``within`` seconds."""
        future = self._queued.get(namespace)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            future.add_done_callback(_retrieve)
            self._queued[namespace] = future
            task = asyncio.create_task(self._send(namespace, future), name=f"read {namespace}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            async with asyncio.timeout(self._within):
                return list(await asyncio.shield(future))
        except TimeoutError:
            raise ApiUnavailable(
                f"list DatabaseMigrations in {namespace}: no answer within {self._within:g}s"
            ) from None

    async def _send(self, namespace: str, future: asyncio.Future[Bodies]) -> None:
        before = self._sending.get(namespace)
        if before is not None:  # one at a time: this one starts when the one before ends
            await asyncio.wait([before])
        if self._queued.get(namespace) is future:
            del self._queued[namespace]  # from now on, newcomers need the next read
        me = asyncio.current_task()
        assert me is not None
        self._sending[namespace] = me
        try:
            bodies = await self._api.list_migrations(namespace, within=self._within)
        except Exception as exc:  # handed to every request waiting for it
            future.set_exception(exc)
        else:
            future.set_result(bodies)
        finally:
            if self._sending.get(namespace) is me:
                del self._sending[namespace]

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _retrieve(future: asyncio.Future[Bodies]) -> None:
    """Mark an exception as seen: every waiter may have given up already (their timeout)."""
    if not future.cancelled():
        future.exception()
