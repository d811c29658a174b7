"""Every relative link in README.md and docs/ points at a file that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs.conftest import REPO, markdown_files, prose

# [text](target "title") and ![alt](target); reference definitions "[id]: target".
_INLINE = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)
_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//|#)", re.IGNORECASE)


def _links(path: Path) -> list[str]:
    text = prose(path.read_text(encoding="utf-8"))
    return _INLINE.findall(text) + _REFERENCE.findall(text)


FILES = markdown_files()


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(REPO)) for p in FILES])
def test_relative_links_resolve(path: Path) -> None:
    broken = []
    for target in _links(path):
        if _EXTERNAL.match(target):
            continue
        file_part = target.split("#", 1)[0].split("?", 1)[0]
        if not file_part:
            continue
        if not (path.parent / file_part).exists():
            broken.append(target)
    assert broken == [], f"{path.relative_to(REPO)} links to missing files: {broken}"


def test_docs_index_links_every_doc() -> None:
    index = (REPO / "docs" / "README.md").read_text(encoding="utf-8")
    targets = {t.split("#", 1)[0] for t in _links(REPO / "docs" / "README.md")}
    for doc in sorted((REPO / "docs").rglob("*.md")):
        rel = doc.relative_to(REPO / "docs").as_posix()
        if rel == "README.md":
            continue
        assert rel in targets, f"docs/README.md does not link {rel}"
    assert "crd-reference.md" in index


def test_readme_links_the_docs_index() -> None:
    assert "docs/README.md" in _links(REPO / "README.md")
