"""Prometheus metrics: the only module that imports ``prometheus_client``.

Everything is derived from *persisted* status, never from what a reconcile merely decided:

- :meth:`Metrics.status_persisted` is called by the executor once the status of a decision is
  stored (its patch succeeded, or nothing had to change). A terminal outcome (``Succeeded`` or
  ``Failed``) is counted only when the patch that wrote it succeeded *and* the outcome differs
  from the one already stored (``core.tallies.is_new_outcome``: phase, generation, Job, attempt,
  finish time). A reconcile that runs twice, a re-list, or a restarted operator reads the
  outcome back from status and counts nothing; a patch that fails (409, 5xx) counts nothing
  either, and the reconcile that follows decides again from the stored status. The one gap is a
  patch whose response is lost after it was applied: the outcome is then not counted (at most
  once).
- Gauges (``info``, ``in_progress``, ``last_success_timestamp_seconds``) are recomputed from the
  stored status on every reconcile, so a restarted operator rebuilds them on its first pass.
- Series of a deleted migration are removed (:meth:`Metrics.forget`, from the DELETED event).
- Label values pass ``core.tallies.metric_label``: the redactor, then only ``[A-Za-z0-9._,-]``
  survive, so a URL, ``user:password@`` or ``key=value`` can never appear in a label. The
  namespace and migration labels are the names whole (up to 253 characters), never a cut that
  two migrations could share.

Each :class:`Metrics` has its own :class:`~prometheus_client.CollectorRegistry` (not the global
one): the operator's startup handler installs a fresh one (:func:`start`), so a restart in the
same process (the tests) starts from empty counters like a new process would. Callers reach it
through :func:`active` (``metrics.active().forget(...)``): the executor reports stored statuses
and the rollout gate's holds and releases, the reconciler counts a failed pass
(:meth:`Metrics.reconcile_error`) where it fails, so the Kubernetes adapter stays free of metrics.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import start_http_server

from alembic_operator.core.tallies import (
    failure_reason,
    held_since,
    is_new_outcome,
    metric_label,
    timestamp,
)
from alembic_operator.errors import ApiError, OperatorError
from alembic_operator.model.status import MigrationStatus, Phase

log = logging.getLogger("alembic_operator.metrics")

METRICS_PORT_ENV = "ALEMBIC_OPERATOR_METRICS_PORT"
DEFAULT_METRICS_PORT = 8080
PREFIX = "alembic_operator"
RESULT_SUCCEEDED = "succeeded"
RESULT_FAILED = "failed"
RESULTS = (RESULT_SUCCEEDED, RESULT_FAILED)
# From a no-op run (~0.4 s: interpreter start and imports) to a long backfill (1 h).
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)
HELD_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
IN_PROGRESS_PHASES = frozenset({Phase.RUNNING, Phase.PLANNING})
# No ``*_created`` series next to every counter and histogram: they double the series count and
# Prometheus' classic text format turns each into a gauge of its own.
disable_created_metrics()  # type: ignore[no-untyped-call]

Key = tuple[str, str]  # (namespace, migration)
MIGRATION = ("namespace", "migration")  # the labels of every per-migration series


def _labels(namespace: str, migration: str) -> tuple[str, str]:
    """The label values of one migration's series: both names whole (see ``metric_label``)."""
    return metric_label(namespace), metric_label(migration)


@dataclass
class _Series:
    """The label sets one migration has created, so :meth:`Metrics.forget` removes them all."""

    uid: str | None
    info: tuple[str, str] | None = None  # (phase, revision)
    reasons: set[str] = field(default_factory=set)
    durations: set[str] = field(default_factory=set)
    held: dict[str, float] = field(default_factory=dict)  # deployment -> held since (Unix time)
    gated: bool = False  # has a deployments_held series
    has_last_success: bool = False
    initialised: bool = False


class Metrics:
    """The operator's metrics in their own registry."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.registry = CollectorRegistry(auto_describe=True)
        self.duration = self._histogram(
            "migration_duration_seconds",
            "How long a migration run took (the runner's own measurement), by result.",
            (*MIGRATION, "result"),
            DURATION_BUCKETS,
        )
        self.total = self._counter(
            "migrations",
            "Terminal migration outcomes, counted once per attempt.",
            (*MIGRATION, "result"),
        )
        self.failures = self._counter(
            "migration_failures",
            "Failed migration outcomes by failure reason, counted once per attempt.",
            (*MIGRATION, "reason"),
        )
        self.in_progress = self._gauge(
            "migration_in_progress",
            "1 while the migration's Job runs (phase Running or Planning), else 0.",
        )
        self.last_success = self._gauge(
            "migration_last_success_timestamp_seconds",
            "When the migration last succeeded (Unix time, from status.lastSucceeded).",
        )
        self.info = self._gauge(
            "migration_info",
            "1 for the migration's current phase and revision (no series for earlier ones).",
            (*MIGRATION, "phase", "revision"),
        )
        self.held = self._gauge(
            "deployments_held", "Deployments the rollout gate currently holds for the migration."
        )
        self.held_seconds = self._histogram(
            "deployment_held_seconds",
            "How long a Deployment was held by the rollout gate before it was released.",
            MIGRATION,
            HELD_BUCKETS,
        )
        self.reconcile_errors = self._counter(
            "reconcile_errors",
            "Reconcile passes that failed, by error type (retried with backoff).",
            ("error",),
        )
        self.api_errors = self._counter(
            "api_errors",
            "Kubernetes API errors that failed a reconcile pass, by HTTP status code.",
            ("code",),
        )
        self._series: dict[Key, _Series] = {}
        self._forgotten: set[str] = set()
        self._server: Any = None

    def _counter(self, name: str, doc: str, labels: tuple[str, ...]) -> Counter:
        return Counter(f"{PREFIX}_{name}", doc, labels, registry=self.registry)

    def _gauge(self, name: str, doc: str, labels: tuple[str, ...] = MIGRATION) -> Gauge:
        return Gauge(f"{PREFIX}_{name}", doc, labels, registry=self.registry)

    def _histogram(
        self, name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...]
    ) -> Histogram:
        return Histogram(f"{PREFIX}_{name}", doc, labels, buckets=buckets, registry=self.registry)

    # --- migrations ----------------------------------------------------------------------------

    def status_persisted(
        self,
        namespace: str,
        migration: str,
        *,
        uid: str | None,
        previous: MigrationStatus,
        current: MigrationStatus,
        written: bool,
    ) -> None:
        """The status ``current`` is now stored (``written``: by a patch that just succeeded).

        Counts a terminal outcome only when ``written`` and it differs from ``previous`` (the
        status the decision was based on), then refreshes the gauges from ``current``.
        """
        if uid is not None and uid in self._forgotten:
            return  # a reconcile that raced with the deletion: the series stay gone
        if written and is_new_outcome(previous, current):
            self._count(namespace, migration, uid, current)
        self.seen(namespace, migration, current, uid=uid)

    def _count(
        self, namespace: str, migration: str, uid: str | None, status: MigrationStatus
    ) -> None:
        series = self._entry(namespace, migration, uid)
        labels = _labels(namespace, migration)
        result = RESULT_SUCCEEDED if status.phase is Phase.SUCCEEDED else RESULT_FAILED
        self.total.labels(*labels, result).inc()
        if status.duration_seconds is not None and status.duration_seconds >= 0:
            series.durations.add(result)
            self.duration.labels(*labels, result).observe(status.duration_seconds)
        if result == RESULT_FAILED:
            reason = metric_label(failure_reason(status))
            series.reasons.add(reason)
            self.failures.labels(*labels, reason).inc()

    def seen(
        self, namespace: str, migration: str, status: MigrationStatus, *, uid: str | None = None
    ) -> None:
        """Set the gauges from a stored status (also rebuilds them after a restart)."""
        if uid is not None and uid in self._forgotten:
            return
        series = self._entry(namespace, migration, uid)
        labels = _labels(namespace, migration)
        if not series.initialised:
            series.initialised = True
            for result in RESULTS:  # so increase() sees the first outcome too
                self.total.labels(*labels, result)
            # After a restart, holds started when DeploymentsHeld last became True.
            self._sync_held(series, labels, status, since=held_since(status))
        else:
            self._sync_held(series, labels, status, since=None)
        self.in_progress.labels(*labels).set(1 if status.phase in IN_PROGRESS_PHASES else 0)
        last = status.last_succeeded.finished_at if status.last_succeeded else None
        if last is not None:
            self.last_success.labels(*labels).set(timestamp(last))
            series.has_last_success = True
        if status.phase is not None:
            info = (metric_label(status.phase.value), metric_label(status.current_revision or ""))
            if series.info != info:
                if series.info is not None:
                    self.info.remove(*labels, *series.info)
                self.info.labels(*labels, *info).set(1)
                series.info = info

    def forget(self, namespace: str, migration: str, *, uid: str | None = None) -> None:
        """Remove every series of a deleted migration."""
        if uid:
            self._forgotten.add(uid)
        series = self._series.pop((namespace, migration), None)
        if series is None:
            return
        labels = _labels(namespace, migration)
        for result in RESULTS:
            self.total.remove(*labels, result)
        for result in series.durations:
            self.duration.remove(*labels, result)
        for reason in series.reasons:
            self.failures.remove(*labels, reason)
        if series.info is not None:
            self.info.remove(*labels, *series.info)
        if series.has_last_success:
            self.last_success.remove(*labels)
        # Removing a label set that was never created is a no-op in prometheus_client.
        self.in_progress.remove(*labels)
        self.held.remove(*labels)
        self.held_seconds.remove(*labels)

    def _entry(self, namespace: str, migration: str, uid: str | None) -> _Series:
        key = (namespace, migration)
        series = self._series.get(key)
        if series is not None and uid is not None and series.uid not in (None, uid):
            self.forget(namespace, migration)  # recreated under the same name: start afresh
            series = None
        if series is None:
            series = self._series[key] = _Series(uid=uid)
        elif series.uid is None:
            series.uid = uid
        return series

    # --- the rollout gate ------------------------------------------------------------------------

    def deployment_held(self, namespace: str, migration: str, deployment: str) -> None:
        """The gate holds ``deployment`` (idempotent: holding it again changes nothing).

        Called when the hold is applied, before the status recording it is written: the hold's
        duration is measured from here. The persisted ``status.gate`` stays the truth for the
        gauge (:meth:`seen`).
        """
        series = self._entry(namespace, migration, None)
        series.held.setdefault(deployment, self._clock())
        series.gated = True
        self.held.labels(*_labels(namespace, migration)).set(len(series.held))

    def deployment_released(
        self, namespace: str, migration: str, deployment: str, held_seconds: float | None = None
    ) -> None:
        """The gate released ``deployment`` (after ``held_seconds``, default: since it was held).

        Each hold is observed once: releasing a Deployment that is no longer held (the stored
        status already released it, or the migration was deleted) observes nothing.
        """
        series = self._series.get((namespace, migration))
        if series is None or deployment not in series.held:
            return
        self._release(series, _labels(namespace, migration), deployment, held_seconds)

    def _release(
        self, series: _Series, labels: tuple[str, str], deployment: str, seconds: float | None
    ) -> None:
        since = series.held.pop(deployment)
        self.held.labels(*labels).set(len(series.held))
        held = self._clock() - since if seconds is None else seconds
        self.held_seconds.labels(*labels).observe(max(held, 0.0))

    def _sync_held(
        self,
        series: _Series,
        labels: tuple[str, str],
        status: MigrationStatus,
        *,
        since: float | None,
    ) -> None:
        """Make the held set what the stored ``status.gate`` says (a Deployment gone: released)."""
        gate = status.gate
        wanted = set(gate.deployments) if gate is not None and gate.held else set()
        for deployment in sorted(series.held.keys() - wanted):
            self._release(series, labels, deployment, None)
        start = self._clock() if since is None else since
        for deployment in sorted(wanted - series.held.keys()):
            series.held[deployment] = start
        if gate is not None or series.held or series.gated:
            series.gated = True
            self.held.labels(*labels).set(len(series.held))

    # --- operator health -------------------------------------------------------------------------

    def reconcile_error(self, exc: BaseException) -> None:
        """A reconcile pass failed with ``exc`` (the reconciler retries it with backoff)."""
        kind = type(exc).__name__ if isinstance(exc, OperatorError) else "Unexpected"
        self.reconcile_errors.labels(metric_label(kind)).inc()
        if isinstance(exc, ApiError):
            self.api_errors.labels(str(exc.status) if exc.status else "none").inc()

    # --- exposition --------------------------------------------------------------------------

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def serve(self, port: int, *, addr: str = "0.0.0.0") -> None:  # noqa: S104 - scraped in-cluster
        """Serve ``/metrics`` on ``port`` in a background thread (0: not at all)."""
        if port == 0 or self._server is not None:
            return
        self._server, _thread = start_http_server(port, addr=addr, registry=self.registry)

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()


# --- the active instance ---------------------------------------------------------------------

_active = Metrics()


def active() -> Metrics:
    return _active


def port_from_env(environ: dict[str, str] | None = None) -> int:
    """The port from ``$ALEMBIC_OPERATOR_METRICS_PORT`` (default 8080; 0 disables)."""
    raw = (os.environ if environ is None else environ).get(METRICS_PORT_ENV, "").strip()
    if not raw:
        return DEFAULT_METRICS_PORT
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"{METRICS_PORT_ENV}={raw!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{METRICS_PORT_ENV}={raw!r} is not a port number")
    return port


def start(port: int) -> Metrics:
    """A fresh registry (empty counters, as in a new process), served on ``port`` (0: not served).

    A port that cannot be bound is logged and the operator runs on without metrics: migrations
    matter more than their numbers, and the failing scrape fires ``OperatorDown``.
    """
    global _active  # noqa: PLW0603 - the one process-wide instance, replaced at startup
    _active.close()
    _active = Metrics()
    try:
        _active.serve(port)
    except OSError as exc:
        log.error("metrics are not served: cannot listen on port %d: %s", port, exc)
    else:
        if port:
            log.info("serving metrics on :%d/metrics", port)
    return _active


def stop() -> None:
    _active.close()
