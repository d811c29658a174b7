"""The apiserver's semantics, independent of HTTP: create, read, list, update, patch, delete.

:class:`Registry` is what both the HTTP layer (:mod:`.apiserver`) and in-process callers (the
local Job executor playing kubelet) use, so a write from Python emits the same watch events as a
write over HTTP. It enforces what an operator relies on: system metadata (uid, resourceVersion,
generation, creationTimestamp, generateName), optimistic concurrency (409 Conflict on a stale
resourceVersion, 409 AlreadyExists), status subresource isolation, deletion with finalizers and
propagation policies, namespace existence, CRD registration, built-in defaulting/validation and
the custom-resource validation hook (422 Invalid). Garbage collection lives in :mod:`.collector`.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from collections.abc import Callable
from typing import Any

from alembic_operator.emulation import errors, objects, patching, strategies
from alembic_operator.emulation.catalog import CRD_TYPE, Catalog, ResourceType, types_from_crd
from alembic_operator.emulation.jsontree import clone
from alembic_operator.emulation.metadata import metadata_errors
from alembic_operator.emulation.selectors import (
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from alembic_operator.emulation.store import Store
from alembic_operator.emulation.validation import builtin_errors
from alembic_operator.emulation.validators import (
    ValidationHook,
    Validator,
    ValidatorFactory,
    admission_validator_factory,
)

__all__ = ["Registry", "Validator", "ValidatorFactory"]

logger = logging.getLogger(__name__)


DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_CRD_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"


class Registry:
    """Objects with apiserver semantics, over a :class:`Store` and a :class:`Catalog`."""

    def __init__(
        self,
        *,
        catalog: Catalog | None = None,
        store: Store | None = None,
        validator_factory: ValidatorFactory | None = admission_validator_factory,
        require_namespaces: bool = True,
        clock: Callable[[], datetime.datetime] | None = None,
    ) -> None:
        self.catalog = catalog or Catalog()
        self.store = store or Store()
        self.validation = ValidationHook(validator_factory)
        self.require_namespaces = require_namespaces
        self.clock = clock or (lambda: datetime.datetime.now(datetime.UTC))
        self.pod_logs: dict[tuple[str, str, str], str] = {}
        self.on_gc_needed: Callable[[], None] = lambda: None
        for name in DEFAULT_NAMESPACES:
            self.create(self.catalog.find("namespaces"), None, {"metadata": {"name": name}})

    # --- reads ----------------------------------------------------------------------------------

    def get(
        self, rtype: ResourceType, namespace: str | None, name: str, *, shared: bool = False
    ) -> dict[str, Any]:
        """A copy of the object as served through ``rtype`` (404 if absent).

        ``shared`` (here and on every method returning objects): only the top level is a new
        dict, the rest is the stored object's; never change it (for serializing at once).
        """
        return self._present(rtype, self._stored(rtype, namespace, name), shared)

    def list(
        self,
        rtype: ResourceType,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        shared: bool = False,
    ) -> tuple[list[dict[str, Any]], int]:
        """Copies of matching objects and the list's resourceVersion."""
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector, rtype.group, rtype.plural)
        items = [
            self._present(rtype, obj, shared)
            for obj in self.store.items(rtype.storage_key, namespace if rtype.namespaced else None)
            if labels_match(labels, obj) and fields_match(fields, obj)
        ]
        return items, self.store.resource_version

    def _stored(self, rtype: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self.store.get(rtype.storage_key, namespace if rtype.namespaced else None, name)
        if obj is None:
            raise errors.not_found(rtype.plural, rtype.group, name)
        return obj

    @staticmethod
    def _present(rtype: ResourceType, obj: dict[str, Any], shared: bool) -> dict[str, Any]:
        result = {**obj} if shared else clone(obj)
        result["apiVersion"] = rtype.api_version
        return result

    # --- create ---------------------------------------------------------------------------------

    def create(
        self,
        rtype: ResourceType,
        namespace: str | None,
        body: Any,
        *,
        dry_run: bool = False,
        shared: bool = False,
    ) -> dict[str, Any]:
        """POST: a new object with system metadata; 409 if the name is taken."""
        obj = objects.decode(rtype, body, namespace)
        meta = obj["metadata"]
        if meta.get("resourceVersion"):
            raise errors.bad_request("resourceVersion should not be set on objects to be created")
        for field in objects.CLIENT_IGNORED_FIELDS:
            meta.pop(field, None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = self._generate_name(rtype, meta)
        self._check_namespace(rtype, meta)
        uid = str(uuid.uuid4())
        strategies.apply_defaults(rtype, obj)
        strategies.prepare_for_create(rtype, obj, uid)
        if rtype.storage_key == CRD_TYPE.storage_key:
            obj["status"] = strategies.crd_status(obj, objects.now(self.clock))
            meta.setdefault("finalizers", [_CRD_FINALIZER])
        self._validate(rtype, obj, None)
        if self.store.get(rtype.storage_key, meta.get("namespace"), meta["name"]) is not None:
            raise errors.already_exists(rtype.plural, rtype.group, meta["name"])
        meta.update(uid=uid, creationTimestamp=objects.now(self.clock), generation=1)
        obj = objects.ordered(obj)
        if dry_run:
            return clone(obj)
        self.store.write(rtype.storage_key, obj)
        self._after_write(rtype, obj, None)
        return self._present(rtype, obj, shared)

    def _generate_name(self, rtype: ResourceType, meta: dict[str, Any]) -> str:
        for _ in range(8):
            name = objects.random_name(meta["generateName"])
            if self.store.get(rtype.storage_key, meta.get("namespace"), name) is None:
                return name
        return name  # the caller answers 409 AlreadyExists, as the apiserver does

    def _check_namespace(self, rtype: ResourceType, meta: dict[str, Any]) -> None:
        if not rtype.namespaced or not self.require_namespaces:
            return
        namespace = self.store.get(("", "namespaces"), None, meta["namespace"])
        if namespace is None:
            raise errors.not_found("namespaces", "", meta["namespace"])
        if namespace["metadata"].get("deletionTimestamp"):
            why = (
                f"unable to create new content in namespace {meta['namespace']} because it is "
                "being terminated"
            )
            raise errors.forbidden(rtype.plural, rtype.group, meta.get("name", ""), why)

    # --- validation -----------------------------------------------------------------------------

    def _validate(
        self, rtype: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        """Metadata and built-in validation, then the custom-resource validation hook."""
        name = obj["metadata"].get("name", "")
        found = metadata_errors(rtype, obj) + builtin_errors(rtype, obj, old)
        if found:
            raise errors.invalid(rtype.kind, rtype.group, name, found)
        if rtype.storage_key == CRD_TYPE.storage_key:
            self.validation.check_crd(obj)
        if rtype.is_custom:
            crd = self.store.get(CRD_TYPE.storage_key, None, rtype.crd_name or "")
            self.validation.admit(rtype, crd, obj, old)

    # --- update and patch -----------------------------------------------------------------------

    def update(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        shared: bool = False,
    ) -> dict[str, Any]:
        """PUT: replace the object (or its status); 409 on a stale resourceVersion."""
        new = objects.decode(rtype, body, namespace)
        if new["metadata"].get("name") != name:
            raise errors.bad_request(
                f"the name of the object ({new['metadata'].get('name')}) does not match the name "
                f"on the URL ({name})"
            )
        old = self._stored(rtype, namespace, name)
        if not new["metadata"].get("resourceVersion") and rtype.is_custom:
            raise errors.invalid(
                rtype.kind,
                rtype.group,
                name,
                [
                    errors.FieldError(
                        "metadata.resourceVersion",
                        "Invalid value",
                        "must be specified for an update",
                        0,
                    )
                ],
            )
        return self._commit(rtype, old, new, subresource, dry_run=dry_run, shared=shared)

    def patch(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        patch_type: str,
        body: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        shared: bool = False,
    ) -> dict[str, Any]:
        """PATCH with a negotiated patch type (see :mod:`.patching`)."""
        stored = self.store.get(rtype.storage_key, namespace if rtype.namespaced else None, name)
        if stored is None and patch_type == patching.APPLY_PATCH and subresource is None:
            created = patching.apply_patch(patch_type, {}, body)
            created.setdefault("metadata", {})["name"] = name
            return self.create(rtype, namespace, created, dry_run=dry_run, shared=shared)
        old = self._stored(rtype, namespace, name)
        # The patch functions never change their target; decode() below copies the result.
        current = self._present(rtype, old, shared=True)
        new = patching.apply_patch(patch_type, current, body)
        meta = new.get("metadata")
        if not isinstance(meta, dict) or meta.get("name") != name:
            raise errors.bad_request(
                "the name of the patched object does not match the name on the URL"
            )
        if subresource is None:
            new = objects.decode(rtype, new, namespace)
        else:  # only its metadata and status are read: prepare_for_update copies the status
            new = objects.decode(rtype, {**new, "metadata": dict(meta)}, namespace, copy=False)
        return self._commit(rtype, old, new, subresource, dry_run=dry_run, shared=shared)

    def _commit(
        self,
        rtype: ResourceType,
        old: dict[str, Any],
        new: dict[str, Any],
        subresource: str | None,
        *,
        dry_run: bool,
        shared: bool,
    ) -> dict[str, Any]:
        """The common update path of PUT and PATCH."""
        objects.carry_system_metadata(rtype, old, new)
        new = strategies.prepare_for_update(rtype, new, old, subresource)
        if subresource is None:
            strategies.apply_defaults(rtype, new)
        objects.check_finalizers(rtype, old, new)
        self._validate(rtype, new, old)
        if strategies.generation_changed(rtype, new, old):
            new["metadata"]["generation"] = int(old["metadata"].get("generation", 0)) + 1
        new = objects.ordered(new)
        if new == old:
            # A no-op write: no new resourceVersion, no event.
            return self._present(rtype, old, shared)
        if dry_run:
            return clone(new)
        if objects.is_released(rtype, new):
            self.store.remove(rtype.storage_key, new)
            self._after_delete(rtype, new)
        else:
            self.store.write(rtype.storage_key, new)
            self._after_write(rtype, new, old)
        return self._present(rtype, new, shared)

    # --- delete ---------------------------------------------------------------------------------

    def delete(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        *,
        propagation: str | None = None,
        preconditions: dict[str, Any] | None = None,
        dry_run: bool = False,
        shared: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """DELETE: the object as marked (False) or as finally deleted (True)."""
        old = self._stored(rtype, namespace, name)
        meta = old["metadata"]
        objects.check_delete_preconditions(rtype, old, preconditions)
        if propagation is None:
            propagation = "Orphan" if rtype.storage_key == ("batch", "jobs") else "Background"
        if propagation not in {"Orphan", "Background", "Foreground"}:
            raise errors.bad_request(f"unsupported propagationPolicy {propagation!r}")
        if meta.get("deletionTimestamp") or dry_run:
            return self._present(rtype, old, shared), False
        finalizers = list(meta.get("finalizers") or [])
        extra = {"Orphan": "orphan", "Foreground": "foregroundDeletion"}.get(propagation)
        if extra and extra not in finalizers:
            finalizers.append(extra)
        if finalizers or (rtype.plural == "namespaces" and rtype.group == ""):
            marked = clone(old)
            marked["metadata"].update(
                deletionTimestamp=objects.now(self.clock),
                deletionGracePeriodSeconds=0,
                generation=int(meta.get("generation", 0)) + 1,
            )
            if finalizers:
                marked["metadata"]["finalizers"] = finalizers
            if rtype.plural == "namespaces":
                marked["status"] = {**(marked.get("status") or {}), "phase": "Terminating"}
            self.store.write(rtype.storage_key, marked)
            self.on_gc_needed()
            return self._present(rtype, marked, shared), False
        final = self.store.remove(rtype.storage_key, clone(old))
        self._after_delete(rtype, final)
        return self._present(rtype, final, shared), True

    # --- hooks ----------------------------------------------------------------------------------

    def _after_write(
        self, rtype: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        if rtype.storage_key == CRD_TYPE.storage_key:
            self._register_crd(obj)
        refs = obj["metadata"].get("ownerReferences")
        if refs and (old is None or refs != old["metadata"].get("ownerReferences")):
            self.on_gc_needed()

    def _after_delete(self, rtype: ResourceType, obj: dict[str, Any]) -> None:
        if rtype.storage_key == CRD_TYPE.storage_key:
            for served in self.catalog.by_crd(obj["metadata"]["name"]):
                self.catalog.remove(served)
        if rtype.storage_key == ("", "pods"):
            ns, pod = obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
            for key in [k for k in self.pod_logs if k[:2] == (ns, pod)]:
                del self.pod_logs[key]
        self.on_gc_needed()

    def _register_crd(self, crd: dict[str, Any]) -> None:
        served = types_from_crd(crd)
        for stale in self.catalog.by_crd(crd["metadata"]["name"]):
            if stale not in served:
                self.catalog.remove(stale)
        for rtype in served:
            if rtype not in self.catalog.by_crd(crd["metadata"]["name"]):
                self.catalog.add(rtype)

    def type_for(self, storage_key: tuple[str, str]) -> ResourceType | None:
        """Any served type of a stored resource (to run writes on stored objects)."""
        return next((t for t in self.catalog if t.storage_key == storage_key), None)

    def install_crd(self, crd: dict[str, Any]) -> dict[str, Any]:
        """Create or replace a CustomResourceDefinition; its resources are served at once."""
        name = (crd.get("metadata") or {}).get("name", "")
        existing = self.store.get(CRD_TYPE.storage_key, None, name)
        if existing is None:
            return self.create(CRD_TYPE, None, crd)
        body = clone(crd)
        body.setdefault("metadata", {})["resourceVersion"] = existing["metadata"]["resourceVersion"]
        body["metadata"].setdefault("finalizers", existing["metadata"].get("finalizers"))
        return self.update(CRD_TYPE, None, name, body)

    def set_pod_log(self, namespace: str, pod: str, container: str | None, text: str) -> None:
        """Set what ``pods/log`` returns for a container (None: for any container of the pod)."""
        self.pod_logs[(namespace, pod, container or "")] = text

    def read_pod_log(self, namespace: str, pod: str, container: str | None) -> str:
        """The log of a pod's container, as the ``log`` subresource serves it."""
        obj = self._stored(self.catalog.find("pods"), namespace, pod)
        spec = obj.get("spec") or {}
        names = [c.get("name") for k in ("initContainers", "containers") for c in spec.get(k) or []]
        if container is None:
            main = [c.get("name") for c in spec.get("containers") or []]
            if len(main) != 1:
                choices = " ".join(map(str, main))
                raise errors.bad_request(
                    f"a container name must be specified for pod {pod}, choose one of: [{choices}]"
                )
            container = str(main[0])
        elif container not in names:
            raise errors.bad_request(f"container {container} is not valid for pod {pod}")
        return self.pod_logs.get(
            (namespace, pod, container), self.pod_logs.get((namespace, pod, ""), "")
        )
