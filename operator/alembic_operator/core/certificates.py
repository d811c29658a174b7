"""When the webhook's CA and serving certificate are renewed: pure, the time passed in.

The operator keeps its own CA and a serving certificate signed by it (controller/certificates.py
does the cryptography and the I/O). The rule, for a certificate valid from ``not_before`` to
``not_after``: renew it once less than a third of its validity is left, or when it is missing,
unreadable, expired, not yet valid, or (the serving certificate) names other hosts or was not
signed by a CA the webhook configuration trusts.

The CA lives much longer than the serving certificate (:data:`CA_LIFETIMES`), and rotating it
keeps the previous CA in the bundle (``caBundle``) until that CA expires: a serving certificate
signed by the previous CA stays trusted until it is itself renewed, so every replica can move to
a new certificate at its own pace and admission never sees a certificate it does not trust.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

# The CA lives this many serving-certificate lifetimes: when it is renewed (a third of it left),
# the previous CA still outlives any serving certificate it signed.
CA_LIFETIMES = 10
RENEW_WHEN_LEFT = 1 / 3


@dataclass(frozen=True)
class Validity:
    """A certificate's validity window."""

    not_before: datetime
    not_after: datetime

    def renew_at(self) -> datetime:
        """The moment less than a third of the validity is left."""
        return self.not_after - (self.not_after - self.not_before) * RENEW_WHEN_LEFT

    def usable(self, now: datetime) -> bool:
        return self.not_before <= now < self.not_after

    def due(self, now: datetime) -> bool:
        return not self.usable(now) or now >= self.renew_at()


@dataclass(frozen=True)
class Stored:
    """What the certificate Secret holds, as read (``None`` parts: missing or unreadable)."""

    ca: Validity | None  # the current CA (its key is in the Secret and matches)
    leaf: Validity | None  # the serving certificate (its key is in the Secret and matches)
    leaf_names: frozenset[str] = frozenset()  # its DNS names and IP addresses
    leaf_trusted: bool = False  # signed by a CA of the bundle that is still valid


class CaStep(enum.Enum):
    KEEP = "keep"
    ROTATE = "rotate"  # a new current CA; the previous one stays in the bundle
    REPLACE = "replace"  # a new CA alone: the stored one is missing, broken or expired


@dataclass(frozen=True)
class Renewal:
    ca: CaStep
    leaf: bool  # issue a new serving certificate (signed by the current CA)
    reason: str

    @property
    def needed(self) -> bool:
        return self.ca is not CaStep.KEEP or self.leaf


def renewal(stored: Stored | None, *, names: frozenset[str], now: datetime) -> Renewal:
    """What to renew now, and why (for the log)."""
    if stored is None or stored.ca is None:
        return Renewal(CaStep.REPLACE, True, "no usable CA stored")
    if not stored.ca.usable(now):
        return Renewal(CaStep.REPLACE, True, "the CA is expired or not yet valid")
    ca = CaStep.ROTATE if stored.ca.due(now) else CaStep.KEEP
    reasons = ["the CA has less than a third of its validity left"] if ca is CaStep.ROTATE else []
    leaf_reason = _leaf_reason(stored, names=names, now=now)
    if leaf_reason:
        reasons.append(leaf_reason)
    return Renewal(ca, bool(leaf_reason), "; ".join(reasons) or "valid")


def _leaf_reason(stored: Stored, *, names: frozenset[str], now: datetime) -> str:
    if stored.leaf is None:
        return "no usable serving certificate stored"
    if not stored.leaf.usable(now):
        return "the serving certificate is expired or not yet valid"
    if stored.leaf.due(now):
        return "the serving certificate has less than a third of its validity left"
    if stored.leaf_names != names:
        return "the serving certificate names other hosts"
    if not stored.leaf_trusted:
        return "the serving certificate is not signed by a trusted CA"
    return ""


def next_check(stored: Stored | None, *, now: datetime, poll: timedelta) -> timedelta:
    """How long until the next look: the poll interval, or sooner when a renewal falls due."""
    dues = [v.renew_at() for v in (stored.ca, stored.leaf) if v is not None] if stored else []
    soonest = min([now + poll, *dues])
    return max(soonest - now, timedelta(seconds=0.5))
