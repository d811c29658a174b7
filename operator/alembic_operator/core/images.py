"""Container image references as the gate compares them: repository, tag, digest.

``registry.example.com/shop/app:2.0`` and ``app`` (``docker.io/library/app:latest``) are
normalised so that two spellings of one image compare equal. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

_DEFAULT_REGISTRY = "docker.io"


@dataclass(frozen=True)
class ImageRef:
    repository: str  # normalised: registry/path (docker.io/library/ for bare names)
    tag: str | None
    digest: str | None

    @property
    def version(self) -> str:
        return "@".join(p for p in (self.tag, self.digest) if p) or "latest"

    def __str__(self) -> str:
        return f"{self.repository}:{self.version}"


def parse_image(reference: str) -> ImageRef:
    name, _, digest = reference.strip().partition("@")
    slash, colon = name.rfind("/"), name.rfind(":")
    repository, tag = (name[:colon], name[colon + 1 :]) if colon > slash else (name, None)
    parts = repository.split("/")
    first = parts[0]
    if len(parts) == 1 or ("." not in first and ":" not in first and first != "localhost"):
        parts.insert(0, _DEFAULT_REGISTRY)
    if parts[0] == _DEFAULT_REGISTRY and len(parts) == 2:
        parts.insert(1, "library")
    if tag is None and not digest:
        tag = "latest"
    return ImageRef(repository="/".join(parts), tag=tag, digest=digest or None)


def same_version(a: ImageRef, b: ImageRef) -> bool:
    """Same digest when both pin one, else the same tag."""
    if a.digest and b.digest:
        return a.digest == b.digest
    return a.tag is not None and a.tag == b.tag
