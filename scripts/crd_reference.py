#!/usr/bin/env python3
"""Generates docs/crd-reference.md from the canonical CRD in crds/.

Every field of every served version: its path, type, default, constraints (enum, pattern, limits,
format, CEL rules with their messages), whether it is required, and its description; the status
fields too. The output is deterministic, and tests/docs/test_crd_reference.py fails when the
committed file differs from what this script renders.

    .venv/bin/python scripts/crd_reference.py           # rewrite docs/crd-reference.md
    .venv/bin/python scripts/crd_reference.py --check   # exit 1 when the file is stale
    .venv/bin/python scripts/crd_reference.py --stdout  # print instead of writing

Needs only PyYAML (a dependency of the project).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
CRD_PATH = REPO / "crds" / "databasemigrations.yaml"
OUTPUT_PATH = REPO / "docs" / "crd-reference.md"
REGENERATE = ".venv/bin/python scripts/crd_reference.py"

# Schema keywords rendered in the "Constraints" column, in this order.
_LIMITS = (
    ("minLength", "min length"),
    ("maxLength", "max length"),
    ("minimum", "minimum"),
    ("maximum", "maximum"),
    ("minItems", "min items"),
    ("maxItems", "max items"),
    ("minProperties", "min properties"),
    ("maxProperties", "max properties"),
)


@dataclass(frozen=True)
class Field:
    """One row of the reference: a schema node at a path."""

    path: str
    schema: Mapping[str, Any]
    required: bool


def load_crd(path: Path = CRD_PATH) -> dict[str, Any]:
    with path.open(encoding="utf-8") as f:
        crd = yaml.safe_load(f)
    if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
        raise SystemExit(f"{path} is not a CustomResourceDefinition")
    return crd


def walk(schema: Mapping[str, Any], path: str, *, required: bool = False) -> Iterator[Field]:
    """Every node below ``schema`` (depth first, properties in the CRD's order)."""
    yield Field(path, schema, required)
    needed = set(schema.get("required") or ())
    for name, child in (schema.get("properties") or {}).items():
        yield from walk(child, f"{path}.{name}" if path else name, required=name in needed)
    items = schema.get("items")
    if isinstance(items, Mapping) and _has_children(items):
        yield from _children(items, f"{path}[]")
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping) and _has_children(extra):
        yield from _children(extra, f"{path}.<key>")


def _has_children(schema: Mapping[str, Any]) -> bool:
    return bool(schema.get("properties")) or _describes_itself(schema)


def _describes_itself(schema: Mapping[str, Any]) -> bool:
    """An item or map value worth its own row: it carries constraints of its own."""
    return any(
        k in schema
        for k in ("pattern", "enum", "x-kubernetes-validations", "minLength", "maxLength")
    )


def _children(schema: Mapping[str, Any], path: str) -> Iterator[Field]:
    if schema.get("properties"):
        yield from walk(schema, path)
    else:
        yield Field(path, schema, False)


def type_of(schema: Mapping[str, Any]) -> str:
    if schema.get("x-kubernetes-int-or-string"):
        return "int-or-string"
    kind = str(schema.get("type", "any"))
    if "format" in schema:
        kind += f" ({schema['format']})"
    if kind == "array":
        items = schema.get("items") or {}
        return f"array of {type_of(items)}" if items else "array"
    if kind == "object":
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping) and not schema.get("properties"):
            return f"map of {type_of(extra)}"
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return "object (free-form)"
    return kind


def constraints(schema: Mapping[str, Any], *, leaf_values: bool = True) -> list[str]:
    """The validation rules of one node (and of its scalar items / map values)."""
    out: list[str] = []
    if "enum" in schema:
        out.append("one of " + ", ".join(_code(_scalar(v)) for v in schema["enum"]))
    if "pattern" in schema:
        out.append(f"pattern {_code(schema['pattern'])}")
    for key, label in _LIMITS:
        if key in schema:
            out.append(f"{label} {schema[key]}")
    if schema.get("x-kubernetes-list-type"):
        kind = schema["x-kubernetes-list-type"]
        keys = schema.get("x-kubernetes-list-map-keys")
        out.append(f"list type {kind}" + (f" (keys: {', '.join(keys)})" if keys else ""))
    if schema.get("x-kubernetes-map-type"):
        out.append(f"map type {schema['x-kubernetes-map-type']}")
    for rule in schema.get("x-kubernetes-validations") or ():
        message = rule.get("message") or rule.get("messageExpression") or ""
        text = f"rule {_code(_fold(rule['rule']))}"
        if message:
            text += f" — {_cell(message)}"
        out.append(text)
    if leaf_values:
        for key, label in (("items", "each item"), ("additionalProperties", "each value")):
            sub = schema.get(key)
            if isinstance(sub, Mapping) and not _has_children(sub):
                inner = constraints(sub, leaf_values=False)
                if inner:
                    out.append(f"{label}: " + "; ".join(inner))
    return out


def _scalar(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _fold(text: str) -> str:
    return " ".join(str(text).split())


def _code(text: str) -> str:
    """An inline code span that survives a Markdown table (pipes escaped, backticks fenced)."""
    text = text.replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _cell(text: str) -> str:
    """Prose for a table cell: one line, pipes escaped, angle brackets kept visible."""
    return _fold(text).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def default_of(schema: Mapping[str, Any]) -> str:
    if "default" not in schema:
        return ""
    return _code(json.dumps(schema["default"], sort_keys=True))


def render_table(fields: list[Field]) -> list[str]:
    lines = [
        "| Field | Type | Required | Default | Constraints | Description |",
        "|---|---|---|---|---|---|",
    ]
    for field in fields:
        s = field.schema
        lines.append(
            "| "
            + " | ".join(
                (
                    _code(field.path),
                    _cell(type_of(s)),
                    "yes" if field.required else "",
                    default_of(s),
                    "<br>".join(constraints(s)),
                    _cell(str(s.get("description", ""))),
                )
            )
            + " |"
        )
    return lines


def render(crd: Mapping[str, Any]) -> str:
    spec = crd["spec"]
    names = spec["names"]
    out = [
        "<!--",
        "  GENERATED FILE: do not edit by hand.",
        f"  Source: crds/databasemigrations.yaml. Regenerate with: {REGENERATE}",
        "  tests/docs/test_crd_reference.py fails when this file is stale.",
        "-->",
        "",
        f"# {names['kind']} API reference",
        "",
        f"Generated from [`crds/databasemigrations.yaml`](../crds/databasemigrations.yaml) by "
        f"[`scripts/crd_reference.py`](../scripts/crd_reference.py) (`{REGENERATE}`). "
        "The CRD is the source of truth: `kubectl explain dbm.spec --recursive` shows the same "
        "descriptions on a cluster.",
        "",
        "| | |",
        "|---|---|",
        f"| Group | `{spec['group']}` |",
        f"| Kind | `{names['kind']}` (list: `{names.get('listKind', '')}`) |",
        f"| Plural / singular | `{names['plural']}` / `{names.get('singular', '')}` |",
        f"| Short names | {', '.join(f'`{n}`' for n in names.get('shortNames', ()))} |",
        f"| Categories | {', '.join(f'`{n}`' for n in names.get('categories', ()))} |",
        f"| Scope | {spec['scope']} |",
        "| Versions | "
        + ", ".join(
            f"`{v['name']}`"
            + (" (served" if v.get("served") else " (not served")
            + (", storage)" if v.get("storage") else ")")
            for v in spec["versions"]
        )
        + " |",
        "",
        "How to read the tables: `a.b[]` is an item of the list `a.b`, `a.<key>` a value of the "
        "map `a`. *Required* means required when its parent object is present. *Rule* entries are "
        "CEL validation rules the apiserver enforces (the text after the dash is the message a "
        "refused `kubectl apply` prints). Unknown fields are pruned (or, with kubectl's default "
        "strict field validation, refused) except where the type says free-form.",
        "",
    ]
    for version in spec["versions"]:
        out.extend(_render_version(version, multiple=len(spec["versions"]) > 1))
    return "\n".join(out).rstrip() + "\n"


def _render_version(version: Mapping[str, Any], *, multiple: bool) -> list[str]:
    schema = version["schema"]["openAPIV3Schema"]
    prefix = f"{version['name']}: " if multiple else ""
    out = [f"## {prefix}Version `{version['name']}`", ""]
    columns = version.get("additionalPrinterColumns") or ()
    if columns:
        out += [
            f"### {prefix}Printer columns (`kubectl get dbm`)",
            "",
            "| Column | Type | JSONPath | Priority | Description |",
            "|---|---|---|---|---|",
        ]
        for c in columns:
            out.append(
                f"| {c['name']} | {c['type']} | `{c['jsonPath']}` | {c.get('priority', 0)} | "
                f"{_cell(c.get('description', ''))} |"
            )
        out.append("")
    subresources = sorted((version.get("subresources") or {}).keys())
    if subresources:
        out += [f"Subresources: {', '.join(f'`{s}`' for s in subresources)}.", ""]
    top = constraints(schema)
    if schema.get("description"):
        out += [_fold(schema["description"]), ""]
    if top:
        out += ["Object-level rules: " + "; ".join(top), ""]
    needed = set(schema.get("required") or ())
    for section, title in (("spec", "Spec"), ("status", "Status")):
        node = (schema.get("properties") or {}).get(section)
        if node is None:
            continue
        out += [f"### {prefix}{title}", ""]
        out += render_table(list(walk(node, section, required=section in needed)))
        out.append("")
    others = [name for name in (schema.get("properties") or {}) if name not in ("spec", "status")]
    if others:
        out += [f"### {prefix}Other top-level fields", ""]
        fields = [Field(name, schema["properties"][name], name in needed) for name in others]
        out += render_table(fields)
        out.append("")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    group.add_argument("--stdout", action="store_true", help="print instead of writing")
    args = parser.parse_args(argv)
    text = render(load_crd())
    if args.stdout:
        sys.stdout.write(text)
        return 0
    if args.check:
        current = OUTPUT_PATH.read_text(encoding="utf-8") if OUTPUT_PATH.exists() else ""
        if current != text:
            sys.stderr.write(f"{OUTPUT_PATH.relative_to(REPO)} is stale: run {REGENERATE}\n")
            return 1
        return 0
    OUTPUT_PATH.write_text(text, encoding="utf-8")
    sys.stderr.write(f"wrote {OUTPUT_PATH.relative_to(REPO)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
