"""Names the operator derives from other names: deterministic, within Kubernetes' limits, distinct.

A migration's (or a Deployment's) name may be as long as a DNS subdomain allows (253
characters), and two names may share any prefix. Whatever the operator names after them (an
Event, a plan ConfigMap) must therefore fit *and* stay apart: a name that does not fit keeps a
readable prefix and ends in a short hash of the whole text (:func:`bounded`), never a bare cut,
which would give two names sharing that prefix the same object. Every name here is a function of
its inputs only, so a retried reconcile derives the same one.

Must not: do I/O, read the clock or draw random numbers (a token that has to differ per Event is
a parameter, see :func:`event_name`).
"""

from __future__ import annotations

import hashlib

from alembic_operator.model.migrations import MigrationRef

MAX_SUBDOMAIN = 253  # a DNS-1123 subdomain: the limit of most object names
HASH_LENGTH = 10
# A plan ConfigMap's name keeps this much of the migration's name (for people reading a list);
# the hash after it is what makes it the migration's own.
PLAN_STEM = 40


def digest(*parts: object) -> str:
    """A short hash of ``parts`` (hex, :data:`HASH_LENGTH` characters)."""
    text = "\x00".join(str(p) for p in parts)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_LENGTH]


def bounded(text: str, *, limit: int) -> str:
    """``text`` if it has at most ``limit`` characters; else a prefix, ``-`` and its hash.

    The result has at most ``limit`` characters and, when cut, ends in the hash of all of
    ``text``: two texts that differ anywhere (beyond the prefix too) stay different. The prefix
    loses trailing ``-`` and ``.`` so a DNS name stays one.
    """
    if len(text) <= limit:
        return text
    stem = text[: max(limit - HASH_LENGTH - 1, 0)].rstrip("-.")
    return f"{stem}-{digest(text)}" if stem else digest(text)[:limit]


def event_name(involved: str, *, token: str) -> str:
    """``<involved>.<token>``, the involved object's name cut (:func:`bounded`) to fit 253.

    ``token`` tells two Events on one object apart (each Event is one occurrence); the part
    before it is the same for every Event on the object and identifies it even when cut.
    """
    return f"{bounded(involved, limit=MAX_SUBDOMAIN - len(token) - 1)}.{token}"


def plan_config_map_name(ref: MigrationRef, plan_hash: str) -> str:
    """``<name prefix>-plan-<hash of uid and plan>``: one migration's ConfigMap of one plan.

    The migration's uid is in the hash, so two migrations whose names share the prefix and
    whose plans are identical (same generation, image, database) still own one ConfigMap each;
    the same migration and plan (a retried reconcile) always give the same name.
    """
    stem = ref.name[:PLAN_STEM].rstrip("-.")
    return f"{stem}-plan-{digest(ref.uid, plan_hash)}"
