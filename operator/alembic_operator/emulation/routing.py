"""URL parsing for the emulated apiserver: which resource, namespace, name and subresource.

kmock's own path parser cannot parse ``/api/v1/namespaces`` (the namespaces resource itself), so
the emulator parses request paths here: ``/api/v1[/namespaces/{ns}]/{plural}[/{name}[/{sub}]]``
and ``/apis/{group}/{version}[/namespaces/{ns}]/{plural}[/{name}[/{sub}]]``, with
``/api/v1/namespaces/{name}/status|finalize`` being subresources of a Namespace.
"""

from __future__ import annotations

import dataclasses

_NAMESPACE_SUBRESOURCES = {"status", "finalize"}


@dataclasses.dataclass(frozen=True)
class ApiPath:
    """The parts of an API path; ``plural`` is None for discovery paths (``/apis/batch/v1``)."""

    group: str
    version: str | None
    plural: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


def parse_path(path: str) -> ApiPath | None:
    """Parse an API path; None for anything outside ``/api`` and ``/apis``."""
    parts = [part for part in path.split("/") if part]
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) == 2:
        return ApiPath(group=parts[1], version=None)
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    is_namespace_subresource = group == "" and len(rest) == 3 and rest[2] in _NAMESPACE_SUBRESOURCES
    if len(rest) >= 3 and rest[0] == "namespaces" and not is_namespace_subresource:
        namespace, rest = rest[1], rest[2:]
    return ApiPath(
        group=group,
        version=version,
        plural=rest[0] if rest else None,
        namespace=namespace,
        name=rest[1] if len(rest) > 1 else None,
        subresource="/".join(rest[2:]) or None,
    )


def verb_of(method: str, path: ApiPath | None, watch: bool) -> str:
    """The Kubernetes verb of a request (``get``, ``list``, ``watch``, ``create``, ...)."""
    if path is None or path.plural is None:
        return method.lower()
    named = path.name is not None
    match method.upper():
        case "GET":
            return "watch" if watch else ("get" if named else "list")
        case "POST":
            return "create"
        case "PUT":
            return "update"
        case "PATCH":
            return "patch"
        case "DELETE":
            return "delete" if named else "deletecollection"
    return method.lower()
