"""HTTP handling of resource requests: content types, query options, verbs, response shapes.

:func:`serve` turns one parsed request into a :class:`Registry` call and an aiohttp response:

- GET: get (also ``/status``), list (``kind: XList``, ``apiVersion``, ``metadata.resourceVersion``,
  ``limit``/``continue`` pagination, selectors), watch (:mod:`.watching`), ``pods/log`` as text;
- POST (create, 201), PUT (update, also ``/status``), PATCH (also ``/status``), DELETE (the object
  while finalizers hold it or for pods/namespaces, else a Success Status), DELETE on a collection;
- ``dryRun=All``; ``propagationPolicy``/``orphanDependents``/``preconditions`` from the query or a
  DeleteOptions body; ``fieldManager`` required for apply patches;
- request bodies: POST/PUT take JSON (or YAML) objects; PATCH content types are negotiated as the
  real apiserver does (415 for unknown ones, strategic merge only for built-ins).
List items of built-in kinds carry no ``kind``/``apiVersion`` (as on a real cluster). Results are
taken ``shared`` from the registry (not deep-copied): they are serialized at once, never changed
below their top level.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp.web

from alembic_operator.emulation import errors, patching, tables
from alembic_operator.emulation.catalog import ResourceType
from alembic_operator.emulation.registry import Registry
from alembic_operator.emulation.routing import ApiPath
from alembic_operator.emulation.watching import serve_watch

_JSON_TYPES = {"", "application/json", "*/*"}
_YAML_TYPES = {"application/yaml", "application/x-yaml", "text/yaml"}
_RETURNS_DELETED_OBJECT = {("", "pods"), ("", "namespaces")}
_JOB_ORPHAN_WARNING = (
    '299 - "child pods are preserved by default when jobs are deleted; set '
    "propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress "
    'this warning"'
)


def _json(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> aiohttp.web.Response:
    return aiohttp.web.json_response(body, status=status, headers=headers)


def _dry_run(params: Mapping[str, str]) -> bool:
    value = params.get("dryRun")
    if value in (None, ""):
        return False
    if value != "All":
        raise errors.bad_request(f'Unsupported value: "{value}": supported values: "All"')
    return True


def _object_body(body: bytes, content_type: str) -> Any:
    if content_type in _JSON_TYPES:
        return patching.decode(body)
    if content_type in _YAML_TYPES:
        return patching.decode(body, yaml_allowed=True)
    raise errors.unsupported_media_type(
        content_type,
        ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"],
    )


def _encode_continue(rv: int, after: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"rv": rv, "start": after}).encode()).decode()


def _decode_continue(token: str) -> tuple[int, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise errors.bad_request(f"continue key is not valid: {exc}") from exc


def _list(
    registry: Registry, rtype: ResourceType, namespace: str | None, params: Mapping[str, str]
) -> dict[str, Any]:
    items, rv = registry.list(
        rtype,
        namespace,
        label_selector=params.get("labelSelector"),
        field_selector=params.get("fieldSelector"),
        shared=True,
    )
    if params.get("continue"):
        rv, after = _decode_continue(params["continue"])
        items = [
            i
            for i in items
            if f"{i['metadata'].get('namespace', '')}/{i['metadata']['name']}" > after
        ]
    metadata: dict[str, Any] = {"resourceVersion": str(rv)}
    limit = int(params.get("limit") or 0)
    if 0 < limit < len(items):
        last = items[limit - 1]["metadata"]
        metadata["continue"] = _encode_continue(rv, f"{last.get('namespace', '')}/{last['name']}")
        metadata["remainingItemCount"] = len(items) - limit
        items = items[:limit]
    if not rtype.is_custom:
        for item in items:
            item.pop("apiVersion", None)
            item.pop("kind", None)
    return {
        "apiVersion": rtype.api_version,
        "kind": rtype.list_kind,
        "metadata": metadata,
        "items": items,
    }


def _delete_options(
    body: bytes, params: Mapping[str, str]
) -> tuple[str | None, dict[str, Any], bool]:
    options = patching.decode(body) if body.strip() else {}
    if not isinstance(options, dict):
        raise errors.bad_request("DeleteOptions must be a JSON object")
    policy = params.get("propagationPolicy") or options.get("propagationPolicy")
    orphan = params.get("orphanDependents", options.get("orphanDependents"))
    if policy is None and orphan is not None:
        policy = "Orphan" if str(orphan).lower() == "true" else "Background"
    dry_run = _dry_run(params) or options.get("dryRun") == ["All"]
    return policy, options.get("preconditions") or {}, dry_run


@dataclasses.dataclass(frozen=True)
class _Call:
    """One resource request, resolved."""

    registry: Registry
    rtype: ResourceType
    path: ApiPath
    method: str
    params: Mapping[str, str]
    body: bytes
    content_type: str

    @property
    def name(self) -> str:
        assert self.path.name is not None
        return self.path.name


def _delete(call: _Call) -> aiohttp.web.Response:
    policy, preconditions, dry_run = _delete_options(call.body, call.params)
    rtype = call.rtype
    obj, deleted = call.registry.delete(
        rtype,
        call.path.namespace,
        call.name,
        propagation=policy,
        preconditions=preconditions,
        dry_run=dry_run,
        shared=True,
    )
    warn = policy is None and rtype.storage_key == ("batch", "jobs")
    headers = {"Warning": _JOB_ORPHAN_WARNING} if warn else None
    if deleted and rtype.storage_key not in _RETURNS_DELETED_OBJECT:
        uid = obj["metadata"]["uid"]
        details = {"name": call.name, "group": rtype.group, "kind": rtype.plural, "uid": uid}
        status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
        return _json({**status, "details": details}, headers=headers)
    return _json(obj, headers=headers)


def _delete_collection(call: _Call) -> aiohttp.web.Response:
    listed = _list(call.registry, call.rtype, call.path.namespace, call.params)
    policy, _, dry_run = _delete_options(call.body, call.params)
    for item in listed["items"]:
        meta = item["metadata"]
        call.registry.delete(
            call.rtype, meta.get("namespace"), meta["name"], propagation=policy, dry_run=dry_run
        )
    return _json(listed)


def _patch(call: _Call) -> aiohttp.web.Response:
    rtype, content_type = call.rtype, call.content_type
    accepted = patching.CUSTOM_PATCH_TYPES if rtype.is_custom else patching.ALL_PATCH_TYPES
    if content_type not in accepted:
        raise errors.unsupported_media_type(content_type, accepted)
    if content_type == patching.APPLY_PATCH and not call.params.get("fieldManager"):
        error = errors.FieldError("fieldManager", "Required value", "is required for apply patch")
        raise errors.invalid("PatchOptions", "meta.k8s.io", "", [error])
    decoded = patching.decode(call.body, yaml_allowed=content_type == patching.APPLY_PATCH)
    namespace = call.path.namespace if rtype.namespaced else None
    existed = call.registry.store.get(rtype.storage_key, namespace, call.name)
    result = call.registry.patch(
        rtype,
        call.path.namespace,
        call.name,
        content_type,
        decoded,
        subresource=call.path.subresource,
        dry_run=_dry_run(call.params),
        shared=True,
    )
    return _json(result, status=201 if existed is None else 200)


def _log(call: _Call) -> aiohttp.web.Response:
    if call.method != "GET":
        raise errors.method_not_allowed(call.method.lower(), "pods/log", "")
    params = call.params
    text = call.registry.read_pod_log(call.path.namespace or "", call.name, params.get("container"))
    if params.get("tailLines"):
        lines = text.splitlines(keepends=True)
        text = "".join(lines[-int(params["tailLines"]) :]) if int(params["tailLines"]) else ""
    if params.get("limitBytes"):
        text = text.encode()[: int(params["limitBytes"])].decode(errors="ignore")
    return aiohttp.web.Response(text=text, content_type="text/plain")


def _read(call: _Call) -> aiohttp.web.Response:
    if call.path.name is None:
        return _json(_list(call.registry, call.rtype, call.path.namespace, call.params))
    return _json(call.registry.get(call.rtype, call.path.namespace, call.name, shared=True))


def _create(call: _Call) -> aiohttp.web.Response:
    body = _object_body(call.body, call.content_type)
    dry_run = _dry_run(call.params)
    created = call.registry.create(
        call.rtype, call.path.namespace, body, dry_run=dry_run, shared=True
    )
    return _json(created, status=201)


def _update(call: _Call) -> aiohttp.web.Response:
    updated = call.registry.update(
        call.rtype,
        call.path.namespace,
        call.name,
        _object_body(call.body, call.content_type),
        subresource=call.path.subresource,
        dry_run=_dry_run(call.params),
        shared=True,
    )
    return _json(updated)


_ROUTES: dict[tuple[str, bool], Callable[[_Call], aiohttp.web.Response]] = {
    ("GET", False): _read,
    ("GET", True): _read,
    ("POST", False): _create,
    ("PUT", True): _update,
    ("PATCH", True): _patch,
    ("DELETE", True): _delete,
    ("DELETE", False): _delete_collection,
}


def _resolve(registry: Registry, path: ApiPath, raw_path: str) -> ResourceType:
    assert path.plural is not None and path.version is not None
    rtype = registry.catalog.get(path.group, path.version, path.plural)
    if rtype is None or (path.namespace is not None and not rtype.namespaced):
        raise errors.resource_not_found(raw_path)
    if rtype.namespaced and path.name is not None and path.namespace is None:
        raise errors.resource_not_found(raw_path)
    if path.subresource is not None and (
        path.subresource not in rtype.subresources or path.name is None
    ):
        raise errors.resource_not_found(raw_path)
    return rtype


async def serve(
    raw: aiohttp.web.BaseRequest,
    registry: Registry,
    path: ApiPath,
    body: bytes,
    closing: asyncio.Event,
) -> aiohttp.web.StreamResponse:
    """Serve one resource request (``path.plural`` is set); raises :class:`errors.ApiError`."""
    rtype = _resolve(registry, path, raw.path)
    params = dict(raw.query)
    method = raw.method.upper()
    if method == "GET" and params.get("watch") in {"true", "1"}:
        return await serve_watch(raw, registry, rtype, path, closing)
    content_type = patching.media_type(raw.headers.get("Content-Type"))
    call = _Call(registry, rtype, path, method, params, body, content_type)
    if path.subresource == "log":
        return _log(call)
    route = _ROUTES.get((method, path.name is not None))
    if route is None or (method == "DELETE" and path.subresource is not None):
        raise errors.method_not_allowed(method.lower(), rtype.plural, rtype.group)
    response = route(call)
    if (
        method == "GET"
        and path.subresource is None
        and rtype.printer_columns
        and tables.wants_table(raw.headers.get("Accept"))
        and response.status == 200
    ):
        assert isinstance(response, aiohttp.web.Response) and response.body is not None
        answer = json.loads(bytes(response.body))  # type: ignore[arg-type]
        return aiohttp.web.json_response(tables.as_table(rtype.printer_columns, answer))
    return response
