"""kopf's peering CRDs (``kopf.dev/v1`` KopfPeering and ClusterKopfPeering), as kopf documents them.

A kopf operator started without ``--standalone`` coordinates with its peers through a peering
object (named ``default`` unless ``--peering`` says otherwise); without the CRDs and the object,
kopf falls back to standalone mode (or fails, if the peering is mandatory). Install them with
:meth:`~.apiserver.ApiServer.install_kopf_peering`.
"""

from __future__ import annotations

from typing import Any

_SCHEMA = {
    "openAPIV3Schema": {
        "type": "object",
        "properties": {"status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
    }
}


def _crd(kind: str, plural: str, scope: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.kopf.dev"},
        "spec": {
            "scope": scope,
            "group": "kopf.dev",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": _SCHEMA}],
        },
    }


KOPF_PEERING_CRDS = (
    _crd("ClusterKopfPeering", "clusterkopfpeerings", "Cluster"),
    _crd("KopfPeering", "kopfpeerings", "Namespaced"),
)
