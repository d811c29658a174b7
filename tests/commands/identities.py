"""People with narrow access: a ServiceAccount, a Role with only some rules, a real token.

Made on the real apiserver (RBAC is its own): a ServiceAccount in the test's namespace, a Role
with ``rules`` bound to it (none: no access at all), a TokenRequest token, and a kubeconfig
that uses it with the namespace as the context's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.cluster.client import Client
from tests.cluster.controlplane import SA_ISSUER, ControlPlane, write_kubeconfig
from tests.operator.harness import wait_for

GROUP = "alembic-operator.dev"


def rule(resources: list[str], verbs: list[str], group: str = GROUP) -> dict[str, Any]:
    return {"apiGroups": [group], "resources": resources, "verbs": verbs}


async def narrow_kubeconfig(
    control_plane: ControlPlane,
    client: Client,
    namespace: str,
    name: str,
    rules: list[dict[str, Any]],
    path: Path,
) -> Path:
    """A kubeconfig for ServiceAccount ``name`` allowed ``rules`` in ``namespace`` only."""
    core = f"/api/v1/namespaces/{namespace}"
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
    await client.ok("POST", f"{core}/serviceaccounts", {"metadata": {"name": name}})
    if rules:
        await client.ok("POST", f"{rbac}/roles", {"metadata": {"name": name}, "rules": rules})
        binding = {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        }
        await client.ok("POST", f"{rbac}/rolebindings", binding)
        user = f"system:serviceaccount:{namespace}:{name}"
        for granted in rules:  # the authorizer reads RBAC from a cache: wait until it has them
            await wait_for(
                lambda granted=granted: allowed(client, user, namespace, granted),
                within=10,
                what=f"RBAC to grant {user} {granted}",
            )
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"audiences": [SA_ISSUER], "expirationSeconds": 3600},
    }
    answer = await client.ok("POST", f"{core}/serviceaccounts/{name}/token", request)
    return token_kubeconfig(control_plane, path, answer["status"]["token"], namespace, user=name)


async def allowed(client: Client, user: str, namespace: str, granted: dict[str, Any]) -> bool:
    """What a SubjectAccessReview says of ``user`` and the rule's first resource and verb."""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": user,
            "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"],
            "resourceAttributes": {
                "namespace": namespace,
                "group": granted["apiGroups"][0],
                "resource": granted["resources"][0].split("/")[0],
                "subresource": "".join(granted["resources"][0].split("/")[1:2]),
                "verb": granted["verbs"][0],
            },
        },
    }
    answer = await client.ok("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", review)
    return bool(answer["status"].get("allowed"))


def token_kubeconfig(
    control_plane: ControlPlane, path: Path, token: str, namespace: str, *, user: str
) -> Path:
    """A kubeconfig presenting ``token`` to the real apiserver."""
    return write_kubeconfig(
        path,
        server=control_plane.server,
        ca=control_plane.ca.cert,
        user=user,
        token=token,
        namespace=namespace,
    )
