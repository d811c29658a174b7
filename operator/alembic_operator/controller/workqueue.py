"""The reconciler's work queue: coalescing per key, one worker per key, timers, error backoff.

What a pass does is given (``work(key)`` returns when to look again in seconds, or ``None``), and
so is the clock (a :class:`Scheduler`: the running asyncio loop by default; the unit tests pass
a fake one and move it by hand). A burst of triggers for one key costs one pass, plus one more
if a trigger arrived while it ran; a key never runs concurrently with itself; a delayed trigger
keeps the earlier of two timers; a failed pass is retried after a backoff that grows with each
consecutive failure of that key (an unexpected exception waits the longest step). While paused
(a standby replica) triggers are only remembered. :func:`retry_stale` retries a pass that read a
version someone else changed meanwhile. Must not know Kubernetes or decide anything.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol, TypeVar

from alembic_operator.controller import metrics
from alembic_operator.errors import Conflict, OperatorError

log = logging.getLogger("alembic_operator.controller")

Key = tuple[str, str]  # (namespace, name)
T = TypeVar("T")
ERROR_BACKOFF_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class Timer(Protocol):
    def when(self) -> float: ...

    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """The clock and timers the queue uses: what ``asyncio.AbstractEventLoop`` offers."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[Key], object], key: Key, /) -> Timer: ...


class Stale(Exception):
    """The pass read a version that changed before it wrote: read again and redo it."""


async def retry_stale(attempt: Callable[[], Awaitable[T]], *, tries: int, what: str) -> T:
    """Run ``attempt`` until it does not raise :class:`Stale`; :class:`Conflict` after ``tries``."""
    for _ in range(tries):
        try:
            return await attempt()
        except Stale:
            log.debug("%s changed meanwhile: reconciling again", what)
    raise Conflict(f"{what}: status kept changing during {tries} tries")


class WorkQueue:
    def __init__(
        self,
        work: Callable[[Key], Awaitable[float | None]],
        *,
        scheduler: Scheduler | None = None,
        backoff: tuple[float, ...] = ERROR_BACKOFF_SECONDS,
        leading: bool = True,
    ) -> None:
        self._work = work
        self._scheduler = scheduler
        self._backoff = backoff
        self.leading = leading
        self._pending: set[Key] = set()  # triggered while paused
        self._dirty: set[Key] = set()  # to run (again)
        self._workers: dict[Key, asyncio.Task[None]] = {}
        self._timers: dict[Key, Timer] = {}
        self._errors: dict[Key, int] = {}  # consecutive failures per key
        self.passes = 0  # finished passes, for observers that wait for the queue to settle

    def _clock(self) -> Scheduler:
        # The loop the queue first ran on: busy() may be asked from another thread (the tests').
        if self._scheduler is None:
            self._scheduler = asyncio.get_running_loop()
        return self._scheduler

    def trigger(self, key: Key, *, delay: float = 0.0) -> None:
        if not self.leading:
            self._pending.add(key)
            return
        if delay > 0:
            clock = self._clock()
            timer = self._timers.get(key)
            due = clock.time() + delay
            if timer is not None and timer.when() <= due:
                return
            if timer is not None:
                timer.cancel()
            self._timers[key] = clock.call_at(due, self._fire, key)
            return
        self._dirty.add(key)
        self._clock()  # remember the loop
        if key not in self._workers:
            task = asyncio.get_running_loop().create_task(self._run(key), name=f"reconcile {key}")
            self._workers[key] = task

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.trigger(key)

    def cancel_timer(self, key: Key) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def busy(self, *, within: float = 0.0) -> bool:
        """Work is queued or running, or a timer is due within ``within`` seconds."""
        if self._dirty or self._workers:
            return True
        timers = list(self._timers.values())  # a copy: the queue's own thread may change it
        if not timers or self._scheduler is None:
            return False
        horizon = self._scheduler.time() + within
        return any(timer.when() <= horizon for timer in timers)

    def resume(self, keys: Iterable[Key] = ()) -> None:
        """Run again: everything triggered while paused, and ``keys``."""
        self.leading = True
        todo, self._pending = self._pending | set(keys), set()
        for key in todo:
            self.trigger(key)

    def pause(self) -> None:
        """Stop at once: timers dropped, running passes cancelled, their keys remembered."""
        self.leading = False
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._pending |= self._dirty | set(self._workers)
        self._dirty.clear()
        for task in self._workers.values():
            task.cancel()

    async def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)

    async def _run(self, key: Key) -> None:
        try:
            while key in self._dirty:
                self._dirty.discard(key)
                try:
                    delay = await self._work(key)
                except OperatorError as exc:
                    metrics.active().reconcile_error(exc)
                    failures = self._errors.get(key, 0)
                    self._errors[key] = failures + 1
                    delay = self._backoff[min(failures, len(self._backoff) - 1)]
                    log.warning("reconciling %s/%s failed (retry in %gs): %s", *key, delay, exc)
                except Exception as exc:
                    metrics.active().reconcile_error(exc)
                    log.exception("reconciling %s/%s failed unexpectedly", *key)
                    delay = self._backoff[-1]
                else:
                    self._errors.pop(key, None)
                self.passes += 1
                if delay is not None:
                    self.trigger(key, delay=delay)
        finally:
            self._workers.pop(key, None)
