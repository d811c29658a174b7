"""The baseline: a no-op kopf operator watching the same resources as alembic-operator.

Same kopf version, same watched resources (DatabaseMigrations, and Jobs/Pods carrying the
migration-uid label), ``@kopf.on.event`` handlers that do nothing, kopf's default login and
settings. Run as ``kopf run --standalone -A -m bench.noop_operator``.

With ``BENCH_NOOP_EXPECT=N`` it prints ``SEEN N <time.monotonic()>`` once its handler has seen N
distinct DatabaseMigrations (the burst benchmark's "handled everything" moment).
"""

from __future__ import annotations

import os
import time
from typing import Any

import kopf

LABEL_MIGRATION_UID = "alembic-operator.dev/migration-uid"
_EXPECT = int(os.environ.get("BENCH_NOOP_EXPECT") or 0)
_seen: set[str] = set()


@kopf.on.event("alembic-operator.dev", "v1alpha1", "databasemigrations")
async def migration_event(body: kopf.Body, **_: Any) -> None:
    if _EXPECT and len(_seen) < _EXPECT:
        _seen.add(str(body.metadata.uid))
        if len(_seen) == _EXPECT:
            print(f"SEEN {_EXPECT} {time.monotonic():.6f}", flush=True)


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_MIGRATION_UID: kopf.PRESENT})
async def job_event(**_: Any) -> None:
    pass


@kopf.on.event("v1", "pods", labels={LABEL_MIGRATION_UID: kopf.PRESENT})
async def pod_event(**_: Any) -> None:
    pass
