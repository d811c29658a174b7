"""Kubernetes timestamps (RFC 3339, whole seconds, UTC) as the local kubelet writes and reads them.

Role: the one place :class:`~.kubelet.LocalKubelet` and its parts format "now" and parse the
``startTime``/``creationTimestamp``/``lastTransitionTime`` fields it reads back.

What it must not do: hold state, talk to the apiserver, or use the event loop's clock (loop
time for deadlines stays with :mod:`.jobcontrol`).
"""

from __future__ import annotations

import datetime

_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def now() -> str:
    """The current time as Kubernetes writes it (``2024-01-02T03:04:05Z``)."""
    return datetime.datetime.now(datetime.UTC).strftime(_FORMAT)


def parse_time(text: str | None) -> datetime.datetime | None:
    """A Kubernetes timestamp as an aware datetime; None when absent or malformed."""
    if not text:
        return None
    try:
        return datetime.datetime.strptime(text, _FORMAT).replace(tzinfo=datetime.UTC)
    except ValueError:
        return None
