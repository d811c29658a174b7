"""The content of a pod's ``projected`` volumes, as a kubelet writes it (ServiceAccount tokens).

Test-only. The apiserver's ServiceAccount admission gives every pod with
``automountServiceAccountToken`` (the default) a projected volume ``kube-api-access-*``:
a ``serviceAccountToken`` (a TokenRequest for the pod's ServiceAccount, bound to the pod,
audience the apiserver's own unless given), the ``kube-root-ca.crt`` ConfigMap's ``ca.crt``
(published into every namespace by kube-controller-manager) and the pod's namespace from the
downward API, mounted at ``/var/run/secrets/kubernetes.io/serviceaccount``. :func:`fill` writes
those files (and ``secret``/``configMap``/``downwardAPI`` sources in general) into the volume's
local folder. It does not refresh tokens (they outlive a test). Missing non-optional sources raise
:class:`~.processes.ConfigError`: the kubelet retries, as a real one keeps the pod in
``ContainerCreating`` until the ConfigMap appears.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from tests.cluster.processes import ConfigError, Lookup, field_value

Request = Callable[[str, str, Any], Awaitable[Any]]


def _write(folder: Path, path: str, text: str, mode: int) -> None:
    target = folder / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    target.chmod(mode)


async def _token(request: Request, pod: Mapping[str, Any], source: Mapping[str, Any]) -> str:
    meta, spec = pod["metadata"], pod.get("spec") or {}
    account = spec.get("serviceAccountName") or "default"
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": [source["audience"]] if source.get("audience") else [],
            "expirationSeconds": int(source.get("expirationSeconds") or 3607),
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "uid": meta["uid"],
            },
        },
    }
    path = f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{account}/token"
    answer = await request("POST", path, body)
    return str(answer["status"]["token"])


async def _items(
    lookup: Lookup, kind: str, namespace: str, ref: Mapping[str, Any]
) -> dict[str, str]:
    data = await lookup(kind, namespace, str(ref["name"]))
    if data is None:
        if ref.get("optional"):
            return {}
        raise ConfigError(f'{kind.lower()} "{ref["name"]}" not found')
    items = ref.get("items")
    if not items:
        return dict(data)
    return {str(i["path"]): data[str(i["key"])] for i in items if str(i["key"]) in data}


async def fill(
    volume: Mapping[str, Any],
    folder: Path,
    pod: Mapping[str, Any],
    *,
    request: Request,
    lookup: Lookup,
    pod_ip: str,
) -> None:
    """Write a ``projected`` volume's files into ``folder`` (other volumes: nothing)."""
    projected = volume.get("projected")
    if not projected:
        return
    mode = int(projected.get("defaultMode") or 0o644)
    namespace = str(pod["metadata"]["namespace"])
    files: dict[str, str] = {}
    for source in projected.get("sources") or []:
        if "serviceAccountToken" in source:
            token_source = source["serviceAccountToken"]
            files[str(token_source["path"])] = await _token(request, pod, token_source)
        for kind, key in (("ConfigMap", "configMap"), ("Secret", "secret")):
            if key in source:
                files.update(await _items(lookup, kind, namespace, source[key]))
        for item in (source.get("downwardAPI") or {}).get("items") or []:
            field = str((item.get("fieldRef") or {}).get("fieldPath") or "")
            files[str(item["path"])] = field_value(pod, field, pod_ip)
    for path, text in files.items():
        _write(folder, path, text, mode)
