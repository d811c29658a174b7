"""The one cache policy (controller/caches.py) with a fake clock: order without numbers,
deletions, expiry and what the resync re-lists; the log cache of terminated containers.

Steps run one clock tick apart, in the order they arrive; an API answer names when its request
was sent (``sent=-2``: two ticks before it arrived).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from alembic_operator.controller.caches import (
    ECHO_SECONDS,
    CachePolicy,
    LogCache,
    Store,
)

KEY = ("ns", "m")
PERIOD = 30.0
Step = Callable[[Store[str]], object]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def event(value: str, *, uid: str = "u1") -> Step:
    """A watch event; the value doubles as its (opaque) resourceVersion."""
    return lambda s: s.seen(KEY, value, uid=uid, version=value)


def answer(value: str, *, sent: float = 0, uid: str = "u1") -> Step:
    return lambda s: s.answered(KEY, value, uid=uid, version=value, since=s.now() + sent)


def written(value: str) -> Step:
    return lambda s: s.written(KEY, value, uid="u1", version=value)


def deleted(uid: str | None = "u1") -> Step:
    return lambda s: s.gone(KEY, uid=uid)


def absent(*, sent: float = 0) -> Step:
    return lambda s: s.absent(KEY, since=s.now() + sent)


WAIT = "wait"  # a step that only lets time pass (PERIOD / 2)


def run(steps: Sequence[Step | str], *, clock: Clock | None = None) -> Store[str]:
    clock = clock or Clock()
    store: Store[str] = Store(CachePolicy(resync_seconds=PERIOD), clock=clock)
    for step in steps:
        clock.now += 1
        if step == WAIT:
            clock.now += PERIOD / 2
        else:
            step(store)  # type: ignore[operator]
    return store


@pytest.mark.parametrize(
    ("steps", "held"),
    [
        pytest.param([event("5")], "5", id="an event"),
        pytest.param([event("10"), event("9")], "9", id="events: the stream's order, no numbers"),
        pytest.param([event("b"), event("a")], "a", id="opaque versions"),
        pytest.param([event("10"), answer("9", sent=-2)], "10", id="answer sent before: loses"),
        pytest.param([event("9"), answer("10")], "10", id="answer sent after: wins"),
        pytest.param([answer("10"), event("9")], "10", id="a lagging event waits for the echo"),
        pytest.param([answer("10"), event("10"), event("11")], "11", id="echoed: stream again"),
        pytest.param([written("12"), event("11")], "12", id="our write waits for its echo too"),
        pytest.param(
            [written("12"), event("11"), event("12"), event("13")], "13", id="write echoed"
        ),
        pytest.param([event("5"), deleted()], None, id="DELETED"),
        pytest.param([event("5"), deleted(), answer("5", sent=-2)], None, id="no resurrection"),
        pytest.param([event("5"), deleted(), answer("6")], None, id="a deleted uid never returns"),
        pytest.param([event("5"), deleted(), event("6")], None, id="not even by a late event"),
        pytest.param([event("5"), deleted(), event("1", uid="u2")], "1", id="a new namesake"),
        pytest.param([event("5"), deleted(None)], None, id="we deleted it (uid unknown)"),
        pytest.param([event("5"), absent(sent=-2)], "5", id="a 404 sent before the event"),
        pytest.param([event("5"), absent()], None, id="a 404 sent after it"),
        pytest.param([event("5"), absent(), answer("5", sent=-2)], None, id="404, then old GET"),
    ],
)
def test_order_and_deletion(steps: Sequence[Step], held: str | None) -> None:
    entry = run(steps).entry(KEY)
    assert (entry.value if entry else None) == held


def test_an_echo_never_delivered_stops_blocking_after_a_while() -> None:
    clock = Clock()
    store = run([answer("10")], clock=clock)
    clock.now += ECHO_SECONDS + 1  # the watch re-listed past version 10
    store.seen(KEY, "12", uid="u1", version="12")
    assert store.get(KEY) == "12"


@pytest.mark.parametrize(
    ("steps", "served", "stale"),
    [
        pytest.param([event("5")], True, False, id="fresh"),
        pytest.param([event("5"), WAIT, WAIT], False, True, id="nothing confirmed it"),
        pytest.param([event("5"), WAIT, event("5"), WAIT], True, False, id="a re-list confirms"),
        pytest.param([event("5"), WAIT, answer("5"), WAIT], True, False, id="an answer does"),
        pytest.param([answer("9"), WAIT, event("8"), WAIT], True, False, id="any event confirms"),
        pytest.param(
            [answer("9"), event("8")],
            False,
            True,
            id="another version while the echo is awaited: lagging or newer, read the API",
        ),
        pytest.param(
            [answer("9"), event("10"), answer("10"), event("11")],
            True,
            False,
            id="an answer the watch already delivered awaits no echo",
        ),
        pytest.param(
            [event("5"), WAIT, answer("5", sent=-PERIOD), WAIT],
            False,
            True,
            id="an answer older than the entry confirms nothing",
        ),
        pytest.param(
            [event("5"), lambda s: s.expire(KEY)], False, True, id="expired (a 409 on its write)"
        ),
    ],
)
def test_expiry_and_what_the_resync_relists(
    steps: Sequence[Step | str], served: bool, stale: bool
) -> None:
    store = run(steps)
    assert (store.get(KEY) is not None) is served
    assert store.entry(KEY) is not None  # the gate index still reads it until the resync
    assert store.stale_namespaces() == (["ns"] if stale else [])


def test_derived_values_are_computed_once_per_applied_value() -> None:
    store = run([event("5")])
    calls: list[str] = []

    def derive(value: str) -> str:
        calls.append(value)
        return value.upper()

    assert store.derived(KEY, derive) == "5"
    assert store.derived(KEY, derive) == "5"
    store.seen(KEY, "x", uid="u1", version="x")
    assert store.derived(KEY, derive) == "X"
    assert calls == ["5", "x"]


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        pytest.param(None, 60.0, id="default"),
        pytest.param("2.5", 2.5, id="set"),
        pytest.param("0", None, id="zero"),
        pytest.param("-1", None, id="negative"),
        pytest.param("soon", None, id="not a number"),
        pytest.param("inf", None, id="infinite"),
    ],
)
def test_policy_from_the_environment(raw: str | None, seconds: float | None) -> None:
    environ = {} if raw is None else {"ALEMBIC_OPERATOR_RESYNC_SECONDS": raw}
    if seconds is None:
        with pytest.raises(ValueError, match="ALEMBIC_OPERATOR_RESYNC_SECONDS must be"):
            CachePolicy.from_env(environ)
    else:
        assert CachePolicy.from_env(environ).resync_seconds == seconds


def test_logs_are_kept_per_pod_uid_within_a_byte_budget() -> None:
    logs = LogCache(max_bytes=10)
    logs.put(("a", "migrate", 100, None), "12345")
    logs.put(("b", "migrate", 100, 200), "6789")
    assert logs.get(("a", "migrate", 100, None)) == "12345"  # a is now the most recent
    assert logs.get(("a", "migrate", 100, 200)) is None  # another read of the same pod
    logs.put(("c", "migrate", 100, None), "xyz")  # over budget: b (least recent) goes
    assert logs.get(("b", "migrate", 100, 200)) is None
    assert len(logs) == 2
    logs.forget("a")  # its DELETED event
    assert logs.get(("a", "migrate", 100, None)) is None
    assert logs.get(("c", "migrate", 100, None)) == "xyz"
