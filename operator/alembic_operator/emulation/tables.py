"""Server-side printing: the ``meta.k8s.io`` Table a real apiserver returns to ``kubectl get``.

kubectl asks for ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` and prints the
columns it gets back: for a custom resource, Name plus the CRD's ``additionalPrinterColumns``
(simple ``.a.b.c`` JSONPaths; ``date`` columns as ages, like the apiextensions apiserver).
Resources without printer columns are answered as plain JSON, which kubectl also prints.
Must not: change what is stored; it only renders a read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple


class PrinterColumn(NamedTuple):
    name: str
    type: str
    json_path: str
    priority: int = 0
    description: str = ""
    format: str = ""


def printer_columns(version: Mapping[str, Any]) -> tuple[PrinterColumn, ...]:
    """A CRD version's ``additionalPrinterColumns``."""
    return tuple(
        PrinterColumn(
            name=str(c.get("name", "")),
            type=str(c.get("type", "string")),
            json_path=str(c.get("jsonPath", "")),
            priority=int(c.get("priority", 0)),
            description=str(c.get("description", "")),
            format=str(c.get("format", "")),
        )
        for c in version.get("additionalPrinterColumns") or ()
    )


def wants_table(accept: str | None) -> bool:
    return bool(accept) and "as=Table" in str(accept) and "g=meta.k8s.io" in str(accept)


def as_table(
    columns: Sequence[PrinterColumn], body: Mapping[str, Any], *, now: datetime | None = None
) -> dict[str, Any]:
    """A Table for a list (``items``) or a single object."""
    now = now or datetime.now(UTC)
    objects = body.get("items") if "items" in body else [body]
    definitions = [
        {
            "name": "Name",
            "type": "string",
            "format": "name",
            "priority": 0,
            "description": "Name must be unique within a namespace.",
        },
        *(
            {
                "name": c.name,
                "type": c.type,
                "format": c.format,
                "priority": c.priority,
                "description": c.description,
            }
            for c in columns
        ),
    ]
    rows = [
        {
            "cells": [obj["metadata"]["name"], *(_cell(c, obj, now) for c in columns)],
            "object": {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            },
        }
        for obj in objects or ()
    ]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": (body.get("metadata") or {}).get("resourceVersion", "")},
        "columnDefinitions": definitions,
        "rows": rows,
    }


def _cell(column: PrinterColumn, obj: Mapping[str, Any], now: datetime) -> Any:
    value: Any = obj
    for key in (k for k in column.json_path.split(".") if k):
        value = value.get(key) if isinstance(value, Mapping) else None
    if value is None:
        return None
    if column.type == "date" and isinstance(value, str):
        try:
            then = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
        return human_duration((now - then).total_seconds())
    return value


def human_duration(seconds: float) -> str:
    """kubectl's short ages: 45s, 3m12s, 2h5m, 4d, 2y."""
    s = max(int(seconds), 0)
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if s < 120:
        return f"{s}s"
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"
