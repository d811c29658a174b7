"""Real client libraries against the emulator, configured through the written kubeconfig."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from alembic_operator.emulation.apiserver import ApiServer
from alembic_operator.emulation.kubeconfig import kubeconfig_text


def test_kubeconfig_document() -> None:
    doc = yaml.safe_load(kubeconfig_text("http://127.0.0.1:1234", namespace="ns"))
    assert doc["clusters"][0]["cluster"]["server"] == "http://127.0.0.1:1234"
    assert doc["users"][0]["user"] == {}
    assert doc["contexts"][0]["context"]["namespace"] == "ns"
    assert doc["current-context"] == doc["contexts"][0]["name"]


def _with_kubernetes_client(kubeconfig: Path) -> dict[str, Any]:
    api_client = k8s_config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    core = k8s.CoreV1Api(api_client)
    custom = k8s.CustomObjectsApi(api_client)
    namespaces = [ns.metadata.name for ns in core.list_namespace().items if ns.metadata]
    configmap = k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="c"), data={"k": "v"})
    core.create_namespaced_config_map("default", configmap)
    body = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"size": 1},
    }
    custom.create_namespaced_custom_object("example.com", "v1", "default", "widgets", body)
    patched: Any = custom.patch_namespaced_custom_object_status(
        "example.com", "v1", "default", "widgets", "w", {"status": {"phase": "Done"}}
    )
    return {
        "namespaces": namespaces,
        "status": patched["status"],
        "configmap": core.read_namespaced_config_map("c", "default").data,
    }


async def test_the_kubernetes_client_works_with_the_kubeconfig(
    api: ApiServer, tmp_path: Path
) -> None:
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    result = await asyncio.to_thread(_with_kubernetes_client, kubeconfig)
    assert "default" in result["namespaces"]
    assert result["configmap"] == {"k": "v"}
    assert result["status"] == {"phase": "Done"}
    patch = next(c for c in api.calls if c.verb == "patch")
    assert patch.content_type.startswith("application/merge-patch+json")
