"""The one cache policy: objects as the watches deliver them, until something proves them stale.

Every cache the operator keeps of API objects is a :class:`Store` (migration bodies and the gate
index over them, the migration Jobs and their pods in :mod:`~alembic_operator.controller.jobcache`,
the Deployments' fingerprints in the reconciler), and every store follows the same rules:

- **Order without numbers.** A resourceVersion is an opaque string: it is only ever compared
  for equality (is this the version already held?), never as a number. Order comes from where a
  body comes from: watch events are applied in the order the stream delivers them (the stream
  is the order); an API answer (GET, LIST) is applied only if nothing was applied for that key
  after the request was sent (the answer is a fresh read, at least as new as anything applied
  before it); the answer to the operator's own write is applied at once. After an answer newer
  than the watch, an event of another version is either lagging or newer (kopf merges events
  that arrive together, so the echo may never come): it is not applied, and the entry is not
  served until the API is read again (for at most :data:`ECHO_SECONDS`).
- **Deletions.** A DELETED event, a 404 or a LIST without the object (sent after it was last
  confirmed) remove the entry; the deleted uid is remembered (:data:`TOMBSTONES`), so a late
  answer or event of that object never brings it back (uids are never reused; a namesake is a
  new uid).
- **Expiry and resync.** Each entry records when it was last confirmed (a watch event, kopf's
  re-listing, an API answer). :meth:`Store.get` serves only entries confirmed within the
  policy's period (``None`` means "read the API"); readers that must not call the API (the
  admission webhook) read every entry, and the reconciler's resync LISTs each namespace holding
  an entry nothing confirmed within the period, so a deletion the watch missed ends within
  about one period (docs/architecture.md, "Caches").

:class:`LogCache` keeps logs of terminated containers by pod uid: they never change.

Must not: talk to the API, parse bodies into model values (a store memoises what its owner
derives, :meth:`Store.derived`), or decide anything about a migration.
"""

from __future__ import annotations

import math
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

RESYNC_ENV = "ALEMBIC_OPERATOR_RESYNC_SECONDS"
# Set by `alembic-operator run` when it watches every namespace: the resync is then one LIST of
# the whole cluster, not one per namespace (which a namespaced RBAC would need).
CLUSTERWIDE_ENV = "ALEMBIC_OPERATOR_CLUSTERWIDE"
DEFAULT_RESYNC_SECONDS = 60.0
# How long an API answer newer than the watch waits for the watch to deliver its version; a
# watch that re-listed past it never will, so the wait is bounded.
ECHO_SECONDS = 10.0
# Deleted uids remembered per store (their late answers and events must not resurrect them).
TOMBSTONES = 4096
# Logs of terminated containers kept, in bytes (a plan's log can be 8 MiB).
LOG_CACHE_BYTES = 64 * 1024 * 1024

Body = Mapping[str, Any]
Key = tuple[str, str]  # (namespace, name)
T = TypeVar("T")
D = TypeVar("D")
_UNSET: Any = object()


@dataclass(frozen=True)
class CachePolicy:
    """The one setting: how long an entry nothing confirms is trusted (and the resync period);
    and whether the resync may list the whole cluster at once."""

    resync_seconds: float = DEFAULT_RESYNC_SECONDS
    clusterwide: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CachePolicy:
        env = os.environ if environ is None else environ
        clusterwide = env.get(CLUSTERWIDE_ENV, "").strip().lower() in ("1", "true", "yes")
        raw = env.get(RESYNC_ENV, "").strip()
        if not raw:
            return cls(clusterwide=clusterwide)
        try:
            seconds = float(raw)
        except ValueError:
            seconds = math.nan
        if not math.isfinite(seconds) or seconds <= 0:
            raise ValueError(f"{RESYNC_ENV} must be a positive number of seconds, not {raw!r}")
        return cls(resync_seconds=seconds, clusterwide=clusterwide)


def key_of(body: Body) -> Key:
    meta = body.get("metadata") or {}
    return (str(meta.get("namespace")), str(meta.get("name")))


def uid_of(body: Body) -> str:
    return str((body.get("metadata") or {}).get("uid") or "")


def version_of(body: Body) -> str:
    """The resourceVersion, opaque (compared for equality only)."""
    return str((body.get("metadata") or {}).get("resourceVersion") or "")


@dataclass
class Entry(Generic[T]):
    value: T
    uid: str
    version: str  # opaque
    confirmed: float  # the last watch event or API answer that showed this object
    echo: str | None = None  # an answered version the watch has not delivered yet
    echo_until: float = 0.0
    memo: Any = _UNSET  # what the owner derives from ``value`` (Store.derived)
    skipped: str | None = None  # the last event ignored while awaiting the echo


class Store(Generic[T]):
    """Entries by namespace and name, fed by one watch and the API's answers (module rules)."""

    def __init__(
        self, policy: CachePolicy | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy = policy or CachePolicy()
        self._clock = clock
        self._entries: dict[str, dict[str, Entry[T]]] = {}
        self._touched: dict[Key, float] = {}  # when a value was last applied or removed
        self._dead: OrderedDict[str, None] = OrderedDict()  # deleted uids

    def now(self) -> float:
        """The store's clock: what an API request's ``since`` is read from."""
        return self._clock()

    # --- feeding ---------------------------------------------------------------------------

    def seen(self, key: Key, value: T, *, uid: str, version: str) -> bool:
        """A watch event (or kopf's re-listing): applied in the stream's order; True if applied."""
        if uid and uid in self._dead:
            return False
        now = self._clock()
        entry = self.entry(key)
        if entry is not None and entry.uid == uid:
            if entry.version == version:
                entry.confirmed, entry.echo = now, None
                return False
            if entry.echo is not None and now < entry.echo_until:
                # Lagging behind the answer, or newer (kopf batches events: the echo may have
                # been merged away): unknowable, so the next reader asks the API.
                entry.confirmed, entry.skipped = -math.inf, version
                return False
        self._put(key, Entry(value, uid, version, confirmed=now), now)
        return True

    def answered(self, key: Key, value: T, *, uid: str, version: str, since: float) -> bool:
        """An API answer to a request sent at ``since``; True if applied."""
        if (uid and uid in self._dead) or self._touched.get(key, -math.inf) > since:
            return False  # deleted, or something applied after the request left may be newer
        now = self._clock()
        entry = self.entry(key)
        if entry is not None and (entry.uid, entry.version) == (uid, version):
            entry.confirmed = now
            return False
        delivered = entry is not None and entry.skipped == version  # no echo will come
        echo = None if delivered else version
        self._put(key, Entry(value, uid, version, now, echo, now + ECHO_SECONDS), now)
        return True

    def written(self, key: Key, value: T, *, uid: str, version: str) -> None:
        """The answer to this process's own write: the newest there is, until the watch echoes."""
        now = self._clock()
        self._put(key, Entry(value, uid, version, now, version, now + ECHO_SECONDS), now)

    def gone(self, key: Key, *, uid: str | None = None) -> None:
        """Deleted (a DELETED event, or this process deleted it): ``uid`` is never served again."""
        entry = self.entry(key)
        dead = uid if uid is not None else (entry.uid if entry is not None else "")
        if entry is not None and (uid is None or entry.uid == uid):
            self._remove(key)
        if dead:
            self._dead[dead] = None
            while len(self._dead) > TOMBSTONES:
                self._dead.popitem(last=False)
        self._touched[key] = self._clock()

    def absent(self, key: Key, *, since: float) -> bool:
        """A 404 or a LIST without it, sent at ``since``: drop it unless confirmed after that."""
        entry = self.entry(key)
        if entry is None or entry.confirmed > since:
            return False
        self.gone(key, uid=entry.uid)
        self._touched[key] = since
        return True

    def expire(self, key: Key) -> None:
        """Stop serving it from :meth:`get` until confirmed again (e.g. a write got 409)."""
        entry = self.entry(key)
        if entry is not None:
            entry.confirmed, entry.echo = -math.inf, None

    # --- reading ---------------------------------------------------------------------------

    def get(self, key: Key) -> T | None:
        """The value if confirmed within the period; ``None`` means "read the API"."""
        entry = self.entry(key)
        if entry is None or self._clock() - entry.confirmed > self.policy.resync_seconds:
            return None
        return entry.value

    def entry(self, key: Key) -> Entry[T] | None:
        """The entry, however old (for readers that must not call the API)."""
        return self._entries.get(key[0], {}).get(key[1])

    def entries(self, namespace: str) -> Iterator[tuple[str, Entry[T]]]:
        yield from list(self._entries.get(namespace, {}).items())

    def derived(self, key: Key, derive: Callable[[T], D]) -> D | None:
        """``derive(value)``, computed once per applied value (one ``derive`` per store)."""
        entry = self.entry(key)
        if entry is None:
            return None
        if entry.memo is _UNSET:
            entry.memo = derive(entry.value)
        return cast(D, entry.memo)

    def namespaces(self) -> list[str]:
        return list(self._entries)

    def stale_namespaces(self) -> list[str]:
        """Namespaces holding an entry nothing confirmed within the period (to re-list)."""
        oldest = self._clock() - self.policy.resync_seconds
        return [
            namespace
            for namespace, names in self._entries.items()
            if any(e.confirmed < oldest for e in names.values())
        ]

    def __len__(self) -> int:
        return sum(len(names) for names in self._entries.values())

    # --- inside ----------------------------------------------------------------------------

    def _put(self, key: Key, entry: Entry[T], now: float) -> None:
        self._entries.setdefault(key[0], {})[key[1]] = entry
        self._touch(key, now)

    def _remove(self, key: Key) -> None:
        names = self._entries.get(key[0], {})
        names.pop(key[1], None)
        if not names:
            self._entries.pop(key[0], None)

    def _touch(self, key: Key, now: float) -> None:
        self._touched[key] = now
        if len(self._touched) > 2 * TOMBSTONES:  # bounded: forget what no request can predate
            horizon = now - max(2 * self.policy.resync_seconds, 120.0)
            self._touched = {k: t for k, t in self._touched.items() if t > horizon}


class LogCache:
    """Logs of terminated containers, by (pod uid, container, how much was read).

    A terminated container's log never changes, so one read serves every later reconcile
    (a failed migration's tail, a plan's whole output). Bounded in bytes, least recently used
    first out; a pod's entries go when its DELETED event arrives.
    """

    def __init__(self, *, max_bytes: int = LOG_CACHE_BYTES) -> None:
        self._max = max_bytes
        self._size = 0
        self._logs: OrderedDict[tuple[str, str, int, int | None], str] = OrderedDict()

    def get(self, key: tuple[str, str, int, int | None]) -> str | None:
        text = self._logs.get(key)
        if text is not None:
            self._logs.move_to_end(key)
        return text

    def put(self, key: tuple[str, str, int, int | None], text: str) -> None:
        self._drop(key)
        self._logs[key] = text
        self._size += len(text)
        while self._size > self._max and len(self._logs) > 1:
            self._drop(next(iter(self._logs)))

    def forget(self, uid: str) -> None:
        for key in [k for k in self._logs if k[0] == uid]:
            self._drop(key)

    def __len__(self) -> int:
        return len(self._logs)

    def _drop(self, key: tuple[str, str, int, int | None]) -> None:
        text = self._logs.pop(key, None)
        if text is not None:
            self._size -= len(text)
