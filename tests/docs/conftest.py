"""Shared helpers for the documentation tests: where the docs are, and what is in them."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
README = REPO / "README.md"

_FENCE = re.compile(r"^(```|~~~)(.*)$")


def markdown_files() -> list[Path]:
    """README.md and every Markdown file under docs/ (recursively)."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def fenced_blocks(text: str) -> list[tuple[str, str, int]]:
    """Every fenced code block as (info string, body, line number of the opening fence)."""
    blocks: list[tuple[str, str, int]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i].strip())
        if match is None:
            i += 1
            continue
        fence, info, start = match.group(1), match.group(2).strip(), i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        blocks.append((info, "\n".join(body) + "\n", start + 1))
        i += 1
    return blocks


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code spans (where links are not links)."""
    out: list[str] = []
    inside: str | None = None
    for line in text.splitlines():
        match = _FENCE.match(line.strip())
        if inside is None and match is not None:
            inside = match.group(1)
            continue
        if inside is not None:
            if line.strip().startswith(inside):
                inside = None
            continue
        out.append(line)
    return re.sub(r"`[^`\n]*`", "", "\n".join(out))
