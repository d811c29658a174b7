"""clone(): a deep copy of JSON-like objects, as copy.deepcopy would give; is_plain_json()."""

from __future__ import annotations

import datetime

import pytest

from alembic_operator.emulation.jsontree import clone, is_plain_json


def test_a_clone_is_equal_and_shares_nothing_mutable() -> None:
    labels = {"app": "shop"}
    obj = {"metadata": {"labels": labels}, "spec": {"items": [labels, [1, 2.5, None, True]]}}
    copied = clone(obj)
    assert copied == obj
    copied["metadata"]["labels"]["app"] = "changed"
    copied["spec"]["items"][1].append(3)
    assert obj == {
        "metadata": {"labels": labels},
        "spec": {"items": [labels, [1, 2.5, None, True]]},
    }
    assert labels == {"app": "shop"}
    assert copied["spec"]["items"][0] == {"app": "shop"}  # a shared sub-tree is copied apart


def test_other_values_are_deep_copied() -> None:
    when = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    inner = [1]
    obj = {"pair": (inner, "x"), "when": when}
    copied = clone(obj)
    assert copied == obj
    assert copied["pair"][0] is not inner
    assert clone("text") == "text" and clone(None) is None


@pytest.mark.parametrize(
    ("value", "plain"),
    [
        pytest.param({"a": [1, 2.5, "x", True, None, {"b": []}]}, True, id="nested-json"),
        pytest.param("text", True, id="scalar"),
        pytest.param({"a": (1, 2)}, False, id="tuple-inside"),
        pytest.param({1: "int key"}, False, id="non-string-key"),
        pytest.param([{"a": object()}], False, id="object-inside"),
    ],
)
def test_is_plain_json(value: object, plain: bool) -> None:
    assert is_plain_json(value) is plain
