"""CEL rules remember accepted values, yet every failure is reported again and oldSelf counts."""

from __future__ import annotations

from typing import Any

from alembic_operator.emulation.cel import RuleSet

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.replicas <= 3", "message": "at most 3"},
                {"rule": "self.name == oldSelf.name", "message": "name is immutable"},
            ],
            "properties": {"replicas": {"type": "integer"}, "name": {"type": "string"}},
        }
    },
}


def messages(rules: RuleSet, new: Any, old: Any = None) -> list[str]:
    return [e.detail for e in rules.check(new, old, has_old=old is not None)]


def test_an_accepted_value_stays_accepted_and_a_failing_one_keeps_failing() -> None:
    rules = RuleSet(SCHEMA)
    good, bad = {"spec": {"replicas": 1, "name": "a"}}, {"spec": {"replicas": 5, "name": "a"}}
    for _ in range(3):
        assert messages(rules, good) == []
        assert messages(rules, bad) == ["at most 3"]


def test_the_old_value_is_part_of_what_was_accepted() -> None:
    rules = RuleSet(SCHEMA)
    new = {"spec": {"replicas": 1, "name": "a"}}
    assert messages(rules, new, {"spec": {"replicas": 1, "name": "a"}}) == []
    assert messages(rules, new, {"spec": {"replicas": 1, "name": "b"}}) == ["name is immutable"]
    assert messages(rules, new) == []  # on create, the transition rule does not apply


def test_json_types_are_told_apart() -> None:
    rules = RuleSet(SCHEMA)
    assert messages(rules, {"spec": {"replicas": 3, "name": "a"}}) == []
    assert messages(rules, {"spec": {"replicas": 3.5, "name": "a"}}) != []
