"""Admission of DatabaseMigration objects by the real kube-apiserver, for the CRD tests.

Test-only. :class:`Admission` sends an object to the real apiserver (which has the canonical CRD
installed) as a server-side dry run and answers what the apiserver answered: the admitted object
(defaults applied, unknown fields pruned), the warnings it sent, or :class:`Refused` carrying its
``metav1.Status`` (message, code, causes). An update is checked against a stored object: the old
object is really created first, then the new one is sent as a dry-run update (status changes go
to the ``status`` subresource, as the operator writes them), and the stored object is deleted.
"""

from __future__ import annotations

import copy
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from tests.cluster.controlplane import ControlPlane

GROUP_PATH = "/apis/alembic-operator.dev/v1alpha1"
_SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields")


class Refused(Exception):
    """The apiserver refused the object: its ``metav1.Status``."""

    def __init__(self, status: dict[str, Any]) -> None:
        super().__init__(status.get("message"))
        self.body = status
        self.message = str(status.get("message", ""))
        self.code = int(status.get("code", 0))
        self.causes = list((status.get("details") or {}).get("causes") or [])

    def status(self) -> dict[str, Any]:
        return self.body


@dataclass
class Admitted:
    """What the apiserver admitted, and the warnings it sent (unknown fields it pruned)."""

    object: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    @property
    def pruned(self) -> list[str]:
        return [w.split('"')[1] for w in self.warnings if w.startswith("unknown field ")]


def _warnings(headers: Any) -> list[str]:
    found = []
    for value in headers.get_all("Warning") or []:
        # RFC 7234 warn-value: 299 - "text"
        text = value.split(" ", 2)[2] if value.count(" ") >= 2 else value
        found.append(json.loads(text) if text.startswith('"') else text)
    return found


@dataclass
class Admission:
    """Dry-run DatabaseMigrations through the real apiserver in ``namespace``."""

    control_plane: ControlPlane
    namespace: str
    last_pruned: list[str] = field(default_factory=list)

    def _ssl(self) -> ssl.SSLContext:
        return self.control_plane.ssl_context()

    def _send(
        self, method: str, path: str, body: Any, *, dry_run: bool, field_validation: str
    ) -> Admitted:
        query = {"fieldValidation": field_validation}
        if dry_run:
            query["dryRun"] = "All"
        request = urllib.request.Request(
            f"{self.control_plane.server}{path}?{urllib.parse.urlencode(query)}",
            data=json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, context=self._ssl(), timeout=30) as answer:
                return Admitted(json.loads(answer.read()), _warnings(answer.headers))
        except urllib.error.HTTPError as error:
            raise Refused(json.loads(error.read())) from error

    def _collection(self, obj: dict[str, Any]) -> str:
        namespace = (obj.get("metadata") or {}).get("namespace") or self.namespace
        return f"{GROUP_PATH}/namespaces/{namespace}/databasemigrations"

    def _placed(self, obj: dict[str, Any]) -> dict[str, Any]:
        """The object in this namespace (tests build objects for ``default``)."""
        placed = copy.deepcopy(obj)
        meta = placed.setdefault("metadata", {})
        if meta.get("namespace") in (None, "default"):
            meta["namespace"] = self.namespace
        return placed

    def admit(
        self,
        obj: dict[str, Any],
        old: dict[str, Any] | None = None,
        *,
        field_validation: str = "Warn",
    ) -> Admitted:
        obj = self._placed(obj)
        if old is None:
            return self._send(
                "POST", self._collection(obj), obj, dry_run=True, field_validation=field_validation
            )
        return self._update(obj, self._placed(old), field_validation)

    def __call__(self, obj: dict[str, Any], old: dict[str, Any] | None = None) -> dict[str, Any]:
        admitted = self.admit(obj, old)
        self.last_pruned = admitted.pruned
        return admitted.object

    def read_back(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create ``obj`` for real and read it back (defaults applied on read), then delete it."""
        obj = self._placed(obj)
        path = f"{self._collection(obj)}/{obj['metadata']['name']}"
        self.control_plane.request("DELETE", path)
        self._send("POST", self._collection(obj), obj, dry_run=False, field_validation="Ignore")
        try:
            return dict(self.control_plane.request("GET", path))
        finally:
            self.control_plane.request("DELETE", path)

    def _update(self, obj: dict[str, Any], old: dict[str, Any], field_validation: str) -> Admitted:
        name = obj["metadata"]["name"]
        path = f"{self._collection(obj)}/{name}"
        stored_body = copy.deepcopy(old)
        for key in _SERVER_FIELDS:
            stored_body["metadata"].pop(key, None)
        old_status = stored_body.pop("status", None)
        self.control_plane.request("DELETE", path)
        stored = self._send(
            "POST", self._collection(obj), stored_body, dry_run=False, field_validation="Ignore"
        ).object
        try:
            if old_status:
                stored["status"] = old_status
                stored = self._send(
                    "PUT", f"{path}/status", stored, dry_run=False, field_validation="Ignore"
                ).object
            update = copy.deepcopy(obj)
            update["metadata"]["resourceVersion"] = stored["metadata"]["resourceVersion"]
            update["metadata"]["uid"] = stored["metadata"]["uid"]
            if update.get("status") is not None and update.get("status") != stored.get("status"):
                return self._send(
                    "PUT", f"{path}/status", update, dry_run=True, field_validation=field_validation
                )
            return self._send("PUT", path, update, dry_run=True, field_validation=field_validation)
        finally:
            self.control_plane.request("DELETE", path)
