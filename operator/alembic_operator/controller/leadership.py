"""Leader election: a small elector on a ``coordination.k8s.io/v1`` Lease.

kopf's peering pauses whole operators by priority; it is not leader election (two replicas of
equal priority both run). So every replica runs kopf with its watches (they feed the gate index
the webhook answers from, and the caches), and this elector decides which one *acts*: it calls
``on_started`` when this replica acquires the Lease (the reconciler starts working: it reconciles
every migration it knows) and ``on_stopped`` when it loses it (the reconciler stops at once).
The decisions are :mod:`alembic_operator.core.leadership` (pure); this module reads and writes
the Lease (guarded by its resourceVersion: of two replicas taking it at once, one gets 409).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from alembic_operator.controller.ownapi import OwnApi
from alembic_operator.core.leadership import (
    LeaseRecord,
    LeaseTimings,
    Observed,
    Step,
    decide_lease,
    observe,
    released,
    still_leading,
)
from alembic_operator.errors import AlreadyExists, ApiError, Conflict

log = logging.getLogger("alembic_operator.leadership")
MICRO_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc_now() -> datetime:
    return datetime.now(UTC)


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    text = str(value).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def parse_lease(body: Mapping[str, Any] | None) -> LeaseRecord | None:
    if body is None:
        return None
    spec = body.get("spec") or {}
    return LeaseRecord(
        holder=str(spec.get("holderIdentity") or ""),
        duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
        acquire_time=_time(spec.get("acquireTime")),
        renew_time=_time(spec.get("renewTime")),
        transitions=int(spec.get("leaseTransitions") or 0),
    )


def lease_spec(record: LeaseRecord) -> dict[str, Any]:
    def fmt(value: datetime | None) -> str | None:
        return value.astimezone(UTC).strftime(MICRO_TIME) if value else None

    return {
        "holderIdentity": record.holder or None,
        "leaseDurationSeconds": record.duration_seconds,
        "acquireTime": fmt(record.acquire_time),
        "renewTime": fmt(record.renew_time),
        "leaseTransitions": record.transitions,
    }


class Elector:
    """Runs the election for one identity; :attr:`leading` says whether this replica acts."""

    def __init__(
        self,
        api: OwnApi,
        *,
        namespace: str,
        name: str,
        identity: str,
        on_started: Callable[[], None],
        on_stopped: Callable[[], None],
        timings: LeaseTimings | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._api = api
        self.namespace, self.name, self.identity = namespace, name, identity
        self._on_started, self._on_stopped = on_started, on_stopped
        self.timings = timings or LeaseTimings()
        self._clock = clock
        self._observed: Observed | None = None
        self._body: dict[str, Any] | None = None
        self._renewed: datetime | None = None
        self.leading = False

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except ApiError as exc:
                log.warning("leader election: %s", exc)
            self._check_deadline()
            await asyncio.sleep(self.timings.retry_period)

    async def step(self) -> None:
        """Read the Lease, decide, write; start or stop leading accordingly."""
        body = await self._api.get_lease(self.namespace, self.name)
        now = self._clock()
        self._body = body
        self._observed = observe(self._observed, parse_lease(body), now=now)
        decision = decide_lease(
            self._observed, identity=self.identity, now=now, timings=self.timings
        )
        if decision.step is Step.WAIT or decision.write is None:
            if self.leading:
                self._stop(
                    f"the Lease is held by {self._observed.record and self._observed.record.holder}"
                )
            return
        try:
            await self._write(body, decision.write)
        except (AlreadyExists, Conflict):
            log.info("leader election: another replica wrote the Lease first")
            return
        self._renewed = now
        if not self.leading:
            self.leading = True
            log.info("leader election: %s leads (%s)", self.identity, decision.step.value)
            self._on_started()

    async def _write(self, body: dict[str, Any] | None, record: LeaseRecord) -> None:
        if body is None:
            manifest = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": lease_spec(record),
            }
            self._body = await self._api.create_lease(self.namespace, manifest)
            return
        updated = {**body, "spec": lease_spec(record)}  # metadata.resourceVersion guards
        self._body = await self._api.update_lease(self.namespace, updated)

    def _check_deadline(self) -> None:
        if self.leading and not still_leading(
            self._renewed, now=self._clock(), timings=self.timings
        ):
            self._stop("could not renew the Lease in time")

    def _stop(self, why: str) -> None:
        self.leading = False
        log.warning("leader election: %s stops leading: %s", self.identity, why)
        self._on_stopped()

    async def release(self) -> None:
        """On a clean stop: stop acting, then hand the Lease over (empty holder)."""
        if not self.leading:
            return
        self.leading = False
        self._on_stopped()
        try:
            # Read it again: a renewal cancelled by the shutdown may have moved it meanwhile.
            body = await self._api.get_lease(self.namespace, self.name)
            record = parse_lease(body)
            if record is None or record.holder != self.identity:
                return
            await self._write(body, released(record, now=self._clock()))
        except ApiError as exc:
            log.warning("leader election: releasing the Lease failed: %s", exc)
        else:
            log.info("leader election: %s released the Lease", self.identity)
