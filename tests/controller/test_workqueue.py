"""The reconciler's work queue on a fake clock: coalescing, timers, backoff, conflict retries.

The queue's clock is its scheduler (``time`` and ``call_at``, what the asyncio loop offers); these
tests give it :class:`FakeClock`, which fires timers only when the test moves time on, so a
30-second backoff takes no time and every pass is seen at the exact second it runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from alembic_operator.controller.workqueue import (
    ERROR_BACKOFF_SECONDS,
    Key,
    Stale,
    WorkQueue,
    retry_stale,
)
from alembic_operator.errors import ApiError, Conflict

A: Key = ("ns", "a")
B: Key = ("ns", "b")


@dataclass
class FakeTimer:
    at: float
    callback: Callable[[Key], object]
    key: Key
    clock: FakeClock
    cancelled: bool = False

    def when(self) -> float:
        return self.at

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class FakeClock:
    """A scheduler whose time moves only in :meth:`run_until`, firing due timers in order.

    Timers due at the same instant fire together, before any task runs (a burst of events).
    """

    now: float = 0.0
    timers: list[FakeTimer] = field(default_factory=list)

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[Key], object], key: Key, /) -> FakeTimer:
        timer = FakeTimer(when, callback, key, self)
        self.timers.append(timer)
        return timer

    def pending(self) -> list[float]:
        return sorted(t.at for t in self.timers if not t.cancelled)

    async def run_until(self, end: float) -> None:
        while True:
            await settle()
            due = [t for t in self.timers if not t.cancelled and t.at <= end]
            if not due:
                break
            self.now = max(self.now, min(t.at for t in due))
            for timer in [t for t in due if t.at <= self.now]:  # a burst: all that are due now
                self.timers.remove(timer)
                timer.callback(timer.key)
        self.now = end
        await settle()


async def settle() -> None:
    """Let every ready task run (a pass in these tests never waits on anything else)."""
    for _ in range(20):
        await asyncio.sleep(0)


@dataclass
class Work:
    """A scripted pass: each call takes the next outcome (a delay, None, or an exception)."""

    clock: FakeClock
    outcomes: list[float | Exception | None]
    calls: list[tuple[float, Key]] = field(default_factory=list)

    async def __call__(self, key: Key) -> float | None:
        self.calls.append((self.clock.now, key))
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def backoff_times(failures: int) -> list[float]:
    """When passes run after ``failures`` consecutive failures from t=0."""
    times, now = [0.0], 0.0
    for n in range(failures):
        now += ERROR_BACKOFF_SECONDS[min(n, len(ERROR_BACKOFF_SECONDS) - 1)]
        times.append(now)
    return times


ERROR = ApiError("apiserver unavailable", status=503)

# (triggers as (time, key, delay), scripted outcomes of A's passes, run until, A's pass times)
CASES = [
    pytest.param([(0, A, 0), (0, A, 0), (0, A, 0)], [None], 100, [0], id="a-burst-coalesces"),
    pytest.param([(0, A, 0), (2, A, 0)], [None, None], 100, [0, 2], id="separate-triggers"),
    pytest.param([(0, A, 0)], [5.0, 7.0, None], 100, [0, 5, 12], id="requeue-after"),
    pytest.param([(0, A, 0)], [0.0, None], 100, [0, 0], id="requeue-zero-runs-again-now"),
    pytest.param([(0, A, 10), (0, A, 3)], [None], 100, [3], id="an-earlier-timer-replaces"),
    pytest.param([(0, A, 3), (0, A, 10)], [None], 100, [3], id="a-later-timer-is-dropped"),
    pytest.param(
        [(0, A, 0), (1, A, 0)], [60.0, 60.0, None], 100, [0, 1, 60], id="watch-event-keeps-resync"
    ),
    pytest.param([(0, A, 0)], [ERROR] * 4, 100, backoff_times(4), id="backoff-grows"),
    pytest.param([(0, A, 0)], [ERROR] * 8, 200, backoff_times(8), id="backoff-caps-at-30s"),
    pytest.param(
        [(0, A, 0)], [ERROR, 1.0, ERROR, None], 100, [0, 0.5, 1.5, 2.0], id="success-resets-backoff"
    ),
    pytest.param([(0, A, 0)], [RuntimeError("bug"), None], 100, [0, 30], id="unexpected-waits-30s"),
    pytest.param(
        [(0, A, 0)], [Conflict("kept changing"), None], 100, [0, 0.5], id="conflict-backs-off"
    ),
]


@pytest.mark.parametrize(("triggers", "outcomes", "until", "expected"), CASES)
async def test_passes_run_when_due(
    triggers: list[tuple[float, Key, float]],
    outcomes: list[float | Exception | None],
    until: float,
    expected: list[float],
) -> None:
    clock = FakeClock()
    work = Work(clock, outcomes)
    queue = WorkQueue(work, scheduler=clock)
    for at, key, delay in triggers:
        clock.call_at(at, lambda k, d=delay: queue.trigger(k, delay=d), key)
    await clock.run_until(until)
    assert [at for at, key in work.calls if key == A] == expected
    assert not queue.busy(within=1e9)


async def test_a_trigger_during_a_pass_runs_it_once_more() -> None:
    """Triggers that arrive while a pass runs cost exactly one more pass, never a concurrent one."""
    release = asyncio.Event()
    running: list[Key] = []
    passes: list[Key] = []

    async def work(key: Key) -> None:
        running.append(key)
        assert running.count(key) == 1, "a key ran concurrently with itself"
        passes.append(key)
        if len(passes) == 1:
            await release.wait()
        running.remove(key)

    clock = FakeClock()
    queue = WorkQueue(work, scheduler=clock)
    queue.trigger(A)
    await settle()
    for _ in range(3):
        queue.trigger(A)
    queue.trigger(B)  # another key is not held up by A
    await settle()
    assert passes == [A, B]
    assert queue.busy()
    release.set()
    await settle()
    assert passes == [A, B, A]
    assert not queue.busy()
    assert queue.passes == 3


@pytest.mark.parametrize(
    ("stale", "calls", "result"),
    [
        pytest.param(0, 1, "done", id="first-try"),
        pytest.param(4, 5, "done", id="last-try"),
        pytest.param(5, 5, Conflict, id="gives-up-after-5"),
    ],
)
async def test_stale_passes_are_retried(stale: int, calls: int, result: object) -> None:
    attempts: list[int] = []

    async def attempt() -> str:
        attempts.append(1)
        if len(attempts) <= stale:
            raise Stale
        return "done"

    if result is Conflict:
        with pytest.raises(Conflict, match="ns/a: status kept changing during 5 tries"):
            await retry_stale(attempt, tries=5, what="ns/a")
    else:
        assert await retry_stale(attempt, tries=5, what="ns/a") == result
    assert len(attempts) == calls


async def test_a_paused_queue_remembers_and_resumes() -> None:
    clock = FakeClock()
    work = Work(clock, [60.0, None, None])
    queue = WorkQueue(work, scheduler=clock, leading=False)
    queue.trigger(A)
    await clock.run_until(10)
    assert work.calls == []  # a standby does nothing ...
    queue.resume([B])  # ... and everything it was asked, once it leads
    await clock.run_until(11)
    assert sorted(key for _, key in work.calls) == [A, B]
    assert clock.pending() == [70.0]  # A's resync
    queue.pause()  # stepping down drops the timers
    assert clock.pending() == []
    await clock.run_until(100)
    assert len(work.calls) == 2
    assert not queue.busy(within=1e9)


@pytest.mark.parametrize(
    ("within", "busy"),
    [
        pytest.param(0.0, False, id="timer-not-due"),
        pytest.param(29.0, False, id="timer-beyond-horizon"),
        pytest.param(30.0, True, id="timer-within-horizon"),
    ],
)
async def test_busy_counts_timers_due_within_the_horizon(within: float, busy: bool) -> None:
    clock = FakeClock()
    queue = WorkQueue(Work(clock, [30.0]), scheduler=clock)
    queue.trigger(A)
    assert queue.busy()  # queued
    await settle()
    assert queue.busy(within=within) is busy


async def test_forgetting_a_migration_cancels_its_timer() -> None:
    clock = FakeClock()
    work = Work(clock, [5.0])
    queue = WorkQueue(work, scheduler=clock)
    queue.trigger(A)
    await settle()
    queue.cancel_timer(A)
    await clock.run_until(100)
    assert [at for at, _ in work.calls] == [0]
