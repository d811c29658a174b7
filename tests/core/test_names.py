"""Names derived from a migration's name (issue 15, rules 11-13): they fit, and they stay apart.

A Kubernetes name may have 253 characters and two names may share any prefix. Every name the
operator derives from one (an Event's, a plan ConfigMap's, a metric label) must fit its limit,
be the same on every retry, and never be shared by two different migrations.
"""

from __future__ import annotations

import re

import pytest

from alembic_operator.core.names import (
    HASH_LENGTH,
    MAX_SUBDOMAIN,
    bounded,
    digest,
    event_name,
    plan_config_map_name,
)
from alembic_operator.core.plans import render_plan
from alembic_operator.core.tallies import LABEL_LIMIT, metric_label
from alembic_operator.model.migrations import Migration, parse_migration
from tests.core.bodies import UID, metadata, minimal
from tests.core.test_approvals import plan_result

SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^[A-Za-z0-9._,\-]*$")
TOKEN = "0123456789abcdef"  # what kubeapi draws per Event (secrets.token_hex(8))
OTHER_UID = "0b6e1d3a-8f2c-4e7d-b1a9-5c4d3e2f1a00"


def name_of(length: int, *, tail: str = "a", prefix: str = "shop-") -> str:
    """A valid name of ``length`` characters: ``prefix``, then ``x``s, ending in ``tail``."""
    return (prefix + "x" * length)[: length - len(tail)] + tail


def parsed(name: str, *, uid: str = UID) -> Migration:
    body = minimal(approval={"required": True})
    body["metadata"] = metadata(name, uid=uid, generation=1)
    return parse_migration(body)


# --- bounded: the one rule for a name that does not fit ------------------------------------------


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        pytest.param("shop", 10, "shop", id="fits"),
        pytest.param("a" * 10, 10, "a" * 10, id="fits-exactly"),
        pytest.param("a" * 30, 20, "a" * 9 + "-" + digest("a" * 30), id="cut-with-hash"),
        pytest.param(
            "abcdefgh.-xyz" * 3, 20, "abcdefgh-" + digest("abcdefgh.-xyz" * 3), id="strip"
        ),
        pytest.param("-" * 30, 20, digest("-" * 30), id="nothing-left-but-the-hash"),
    ],
)
def test_bounded(text: str, limit: int, expected: str) -> None:
    assert bounded(text, limit=limit) == expected
    assert len(bounded(text, limit=limit)) <= limit


# --- rule 11: Events on a name of any valid length ----------------------------------------------


CUT = MAX_SUBDOMAIN - len(TOKEN) - 1 - HASH_LENGTH - 1  # where a 253-character name is cut


@pytest.mark.parametrize(
    "involved",
    [
        pytest.param("a", id="1"),
        pytest.param(name_of(63), id="63"),
        pytest.param(name_of(MAX_SUBDOMAIN - len(TOKEN) - 1), id="236-longest-kept-whole"),
        pytest.param(name_of(237), id="237"),
        pytest.param(name_of(239, tail="a.b"), id="239-dotted"),
        pytest.param(name_of(250, tail="a-b"), id="250"),
        pytest.param(name_of(MAX_SUBDOMAIN), id="253"),
        pytest.param("s" * (CUT - 1) + "." + "y" * (253 - CUT), id="253-dot-at-the-cut"),
        pytest.param("s" * (CUT - 2) + "--" + "y" * (253 - CUT), id="253-dashes-at-the-cut"),
    ],
)
def test_event_names_are_valid_for_every_valid_involved_name(involved: str) -> None:
    assert SUBDOMAIN.match(involved) and len(involved) <= MAX_SUBDOMAIN
    name = event_name(involved, token=TOKEN)
    assert len(name) <= MAX_SUBDOMAIN and SUBDOMAIN.match(name), name
    assert name.endswith(f".{TOKEN}")
    assert name == event_name(involved, token=TOKEN)  # a function of its inputs only
    if len(involved) + 1 + len(TOKEN) <= MAX_SUBDOMAIN:
        assert name == f"{involved}.{TOKEN}"  # kept whole, like client-go's names
    else:
        assert name.startswith(involved[: CUT - 2]) and digest(involved) in name


def test_event_names_of_long_names_sharing_a_prefix_differ() -> None:
    first, second = name_of(253, tail="a"), name_of(253, tail="b")
    assert first[:252] == second[:252]
    assert event_name(first, token=TOKEN) != event_name(second, token=TOKEN)


# --- rule 12: metric labels never merge two migrations -------------------------------------------


@pytest.mark.parametrize(
    "length", [pytest.param(n, id=str(n)) for n in (1, 63, 128, 129, 200, MAX_SUBDOMAIN)]
)
def test_every_kubernetes_name_is_its_own_metric_label(length: int) -> None:
    name = name_of(length)
    assert metric_label(name) == name


def test_long_names_sharing_a_prefix_have_distinct_labels() -> None:
    first, second = name_of(200, tail="-first"), name_of(200, tail="-second")
    assert first[:128] == second[:128]
    assert metric_label(first) != metric_label(second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param("r" * 300 + "1", "r" * 300 + "2", id="differ-past-the-limit"),
        pytest.param("x" * 400, "x" * 401, id="differ-in-length"),
    ],
)
def test_values_over_the_limit_are_bounded_and_stay_apart(first: str, second: str) -> None:
    a, b = metric_label(first), metric_label(second)
    assert len(a) == len(b) == LABEL_LIMIT
    assert LABEL_VALUE.match(a) and LABEL_VALUE.match(b)
    assert a != b
    assert a == metric_label(first)  # deterministic: the same series on every reconcile


def test_a_bounded_label_hashes_the_redacted_text_only() -> None:
    secret = "postgresql://app:hunter22@db/" + "p" * 300
    value = metric_label(secret)
    assert "hunter22" not in value and len(value) == LABEL_LIMIT
    assert value.endswith("-" + digest("postgresql://app:***@db/" + "p" * 300))


# --- rule 13: each migration owns its plan ConfigMap ---------------------------------------------

SHARED = "shop-schema-for-the-orders-service-in-eu"  # 40 characters


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(
            (SHARED + "-west", UID), (SHARED + "-east", OTHER_UID), id="names-share-40-chars"
        ),
        pytest.param(
            (name_of(253, tail="a"), UID), (name_of(253, tail="b"), OTHER_UID), id="253-chars"
        ),
        pytest.param((SHARED, UID), (SHARED, OTHER_UID), id="same-name-recreated"),
    ],
)
def test_identical_plans_of_two_migrations_get_two_config_maps(
    first: tuple[str, str], second: tuple[str, str]
) -> None:
    result = plan_result()
    one = render_plan(parsed(first[0], uid=first[1]), result, output="")
    two = render_plan(parsed(second[0], uid=second[1]), result, output="")
    assert one.hash == two.hash  # the same plan...
    names = [p.config_map["metadata"]["name"] for p in (one, two)]
    assert names[0] != names[1]  # ...in a ConfigMap of each migration's own
    for plan, (_, uid) in zip((one, two), (first, second), strict=True):
        meta = plan.config_map["metadata"]
        assert [o["uid"] for o in meta["ownerReferences"]] == [uid]
        assert len(meta["name"]) <= MAX_SUBDOMAIN and SUBDOMAIN.match(meta["name"])


def test_a_plan_config_map_name_is_stable_per_migration_and_plan() -> None:
    m = parsed(SHARED + "-west")
    name = render_plan(m, plan_result(), output="").config_map["metadata"]["name"]
    again = render_plan(m, plan_result(), output="").config_map["metadata"]["name"]
    other_plan = render_plan(m, plan_result(revisions=("r1",)), output="")
    assert name == again  # a retried reconcile creates (or finds) the same ConfigMap
    assert other_plan.config_map["metadata"]["name"] != name
    assert name == f"{SHARED}-plan-{digest(UID, plan_result_hash(m))}"
    assert len(name) == len(SHARED) + len("-plan-") + HASH_LENGTH


def plan_result_hash(m: Migration) -> str:
    return render_plan(m, plan_result(), output="").hash


def test_plan_config_map_name_keeps_a_readable_prefix() -> None:
    assert plan_config_map_name(parsed("shop").ref, "h").startswith("shop-plan-")
    cut = plan_config_map_name(parsed("a" * 39 + ".b").ref, "h")
    assert cut.startswith("a" * 39 + "-plan-")  # no "." before "-plan"
