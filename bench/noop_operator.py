"""The baseline: a no-op kopf operator watching the same resources as alembic-operator.

Same kopf version, same watched resources (DatabaseMigrations, Jobs/Pods carrying the
migration-uid label, Deployments), kopf's default login and settings. Run as
``kopf run --standalone -A -m bench.noop_operator``. Two styles, chosen by
``BENCH_NOOP_STYLE``:

- ``events`` (the default): ``@kopf.on.event`` handlers that do nothing. kopf keeps no state
  and writes nothing: the floor.
- ``handlers``: kopf's usual structure for the DatabaseMigration — ``@kopf.on.create``,
  ``@kopf.on.update`` and ``@kopf.on.delete`` handlers that do nothing — with kopf's default
  persistence (the deletion handler's finalizer, the last-handled-configuration annotation).
  This is what kopf itself writes for an operator built the way its documentation shows.

With ``BENCH_NOOP_EXPECT=N`` it prints ``SEEN N <time.monotonic()>`` once a handler has seen N
distinct DatabaseMigrations (the "handled everything" moment of the removed burst benchmark; with
``handlers``, once their creation handler has run).
"""

from __future__ import annotations

import os
import time
from typing import Any

import kopf

LABEL_MIGRATION_UID = "alembic-operator.dev/migration-uid"
DBM = ("alembic-operator.dev", "v1alpha1", "databasemigrations")
_EXPECT = int(os.environ.get("BENCH_NOOP_EXPECT") or 0)
_STYLE = os.environ.get("BENCH_NOOP_STYLE") or "events"
_seen: set[str] = set()


def _saw(body: kopf.Body) -> None:
    if _EXPECT and len(_seen) < _EXPECT:
        _seen.add(str(body.metadata.uid))
        if len(_seen) == _EXPECT:
            print(f"SEEN {_EXPECT} {time.monotonic():.6f}", flush=True)


if _STYLE == "handlers":

    @kopf.on.create(*DBM)
    async def migration_created(body: kopf.Body, **_: Any) -> None:
        _saw(body)

    @kopf.on.update(*DBM)
    async def migration_updated(**_: Any) -> None:
        pass

    @kopf.on.delete(*DBM)
    async def migration_deleted(**_: Any) -> None:
        pass

elif _STYLE == "events":

    @kopf.on.event(*DBM)
    async def migration_event(body: kopf.Body, **_: Any) -> None:
        _saw(body)

else:
    raise SystemExit(f"BENCH_NOOP_STYLE must be 'events' or 'handlers', not {_STYLE!r}")


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_MIGRATION_UID: kopf.PRESENT})
async def job_event(**_: Any) -> None:
    pass


@kopf.on.event("v1", "pods", labels={LABEL_MIGRATION_UID: kopf.PRESENT})
async def pod_event(**_: Any) -> None:
    pass


@kopf.on.event("apps", "v1", "deployments")
async def deployment_event(**_: Any) -> None:
    pass
