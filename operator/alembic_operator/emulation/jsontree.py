"""Copying JSON documents (the emulator's objects): a faster ``copy.deepcopy`` for them.

Objects, patches and statuses are trees of dicts, lists and scalars. :func:`clone` copies such
a tree several times faster than :func:`copy.deepcopy` (no memo, no per-value dispatch through
``__deepcopy__``); anything else inside (a tuple, a dict subclass, ...) is deep-copied as before.
Unlike ``deepcopy``, a sub-tree referenced twice is copied twice, as a JSON round trip would.
:func:`is_plain_json` tells whether a value is such a tree and nothing else.
"""

from __future__ import annotations

import copy
from typing import Any, TypeVar

_T = TypeVar("_T")
_SCALARS = frozenset({str, int, float, bool, type(None)})


def clone(value: _T) -> _T:
    """A deep copy of a JSON-like value."""
    kind = type(value)
    if kind is dict:
        return _clone_dict(value)  # type: ignore[arg-type,return-value]
    if kind is list:
        return _clone_list(value)  # type: ignore[arg-type,return-value]
    if kind in _SCALARS:
        return value
    return copy.deepcopy(value)


def is_plain_json(value: Any) -> bool:
    """Whether ``value`` is only dicts with string keys, lists and JSON scalars."""
    kind = type(value)
    if kind is dict:
        return all(type(k) is str and is_plain_json(v) for k, v in value.items())
    if kind is list:
        return all(is_plain_json(v) for v in value)
    return kind in _SCALARS


def _clone_dict(tree: dict[Any, Any]) -> dict[Any, Any]:
    result: dict[Any, Any] = {}
    for key, item in tree.items():
        kind = type(item)
        if kind is dict:
            result[key] = _clone_dict(item)
        elif kind is list:
            result[key] = _clone_list(item)
        elif kind in _SCALARS:
            result[key] = item
        else:
            result[key] = copy.deepcopy(item)
    return result


def _clone_list(tree: list[Any]) -> list[Any]:
    result: list[Any] = []
    for item in tree:
        kind = type(item)
        if kind is dict:
            result.append(_clone_dict(item))
        elif kind is list:
            result.append(_clone_list(item))
        elif kind in _SCALARS:
            result.append(item)
        else:
            result.append(copy.deepcopy(item))
    return result
