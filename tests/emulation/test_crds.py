"""CRDs: registration (Python and HTTP), discovery, the validation hook, deletion."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from alembic_operator.emulation.apiserver import ApiServer
from alembic_operator.emulation.errors import ApiError
from alembic_operator.emulation.registry import Registry
from tests.emulation.helpers import MERGE, WIDGETS, Client, crd, eventually, widget

REPO = Path(__file__).resolve().parents[2]
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


async def test_discovery_lists_installed_custom_resources(client: Client) -> None:
    groups = await client.ok("GET", "/apis")
    assert "example.com" in [g["name"] for g in groups["groups"]]
    listing = await client.ok("GET", "/apis/example.com/v1")
    assert listing["groupVersion"] == "example.com/v1"
    by_name = {r["name"]: r for r in listing["resources"]}
    assert by_name["widgets"]["kind"] == "Widget"
    assert by_name["widgets"]["namespaced"] is True
    assert by_name["widgets"]["shortNames"] == ["wdg"]
    assert "widgets/status" in by_name and "gadgets/status" not in by_name
    core = await client.ok("GET", "/api/v1")
    assert core["groupVersion"] == "v1"
    assert {"namespaces", "pods", "pods/log", "pods/status", "secrets", "events"} <= {
        r["name"] for r in core["resources"]
    }


async def test_builtin_groups_are_discoverable(client: Client) -> None:
    for path, plural in (
        ("/apis/batch/v1", "jobs"),
        ("/apis/apps/v1", "deployments"),
        ("/apis/coordination.k8s.io/v1", "leases"),
        ("/apis/events.k8s.io/v1", "events"),
        ("/apis/apiextensions.k8s.io/v1", "customresourcedefinitions"),
    ):
        listing = await client.ok("GET", path)
        assert plural in [r["name"] for r in listing["resources"]], path


async def test_crd_posted_over_http_is_served_and_established(client: Client) -> None:
    created = await client.ok("POST", CRDS, crd("sprockets", "Sprocket"))
    conditions = {c["type"]: c["status"] for c in created["status"]["conditions"]}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    assert created["status"]["acceptedNames"]["kind"] == "Sprocket"
    path = "/apis/example.com/v1/namespaces/default/sprockets"
    await client.ok("POST", path, {"metadata": {"name": "s"}, "spec": {}})
    assert (await client.ok("GET", path))["kind"] == "SprocketList"


async def test_crd_name_must_be_plural_dot_group(client: Client) -> None:
    bad = crd("sprockets", "Sprocket")
    bad["metadata"]["name"] = "wrong.example.com"
    status, body = await client.post(CRDS, bad)
    assert status == 422, body


async def test_deleting_a_crd_deletes_its_objects_and_stops_serving(client: Client) -> None:
    await client.ok("POST", WIDGETS, widget("w"))
    await client.ok("DELETE", f"{CRDS}/widgets.example.com")

    async def unserved() -> bool:
        return (await client.get(WIDGETS))[0] == 404 and (
            await client.get(f"{CRDS}/widgets.example.com")
        )[0] == 404

    await eventually(unserved)
    listing = await client.ok("GET", "/apis/example.com/v1")
    assert "widgets" not in [r["name"] for r in listing["resources"]]


class Refused(Exception):
    """What a validator raises: a message and the causes (like admission.SchemaViolation)."""

    def __init__(self, message: str, causes: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.message = message
        self.causes = causes


def tiny_validator(seen: list[tuple[dict[str, Any], dict[str, Any] | None]]) -> Any:
    def validate(new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
        seen.append((copy.deepcopy(new), copy.deepcopy(old)))
        size = new.get("spec", {}).get("size", 0)
        if not isinstance(size, int) or size > 10:
            cause = {
                "reason": "FieldValueInvalid",
                "message": "Invalid value: 11: must be at most 10",
                "field": "spec.size",
            }
            name = new["metadata"]["name"]
            raise Refused(
                f'Widget.example.com "{name}" is invalid: spec.size: {cause["message"]}',
                [cause],
            )
        result = copy.deepcopy(new)
        result.setdefault("spec", {}).setdefault("color", "blue")  # defaulting
        result["spec"].pop("unknown", None)  # pruning
        return result

    return validate


async def test_validation_hook_rejects_with_422_and_defaults(
    api: ApiServer, client: Client
) -> None:
    seen: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    api.set_validator(api.resource_type("widgets"), tiny_validator(seen))
    status, body = await client.post(WIDGETS, widget("w", size=11))
    assert status == 422, body
    assert body["reason"] == "Invalid"
    assert (
        body["message"]
        == 'Widget.example.com "w" is invalid: spec.size: Invalid value: 11: must be at most 10'
    )
    assert body["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": "Invalid value: 11: must be at most 10",
            "field": "spec.size",
        }
    ]
    assert (body["details"]["name"], body["details"]["group"], body["details"]["kind"]) == (
        "w",
        "example.com",
        "Widget",
    )
    created = await client.ok("POST", WIDGETS, widget("w", size=1, unknown=True))
    assert created["spec"] == {"size": 1, "color": "blue"}
    assert seen[-1][1] is None  # no old object on create
    status, _ = await client.patch(f"{WIDGETS}/w", {"spec": {"size": 12}})
    assert status == 422
    await client.ok("PATCH", f"{WIDGETS}/w/status", {"status": {"phase": "ok"}}, content_type=MERGE)
    new, old = seen[-1]
    assert new["status"] == {"phase": "ok"} and old is not None and "status" not in old


async def test_the_admission_module_is_the_default_validator(tmp_path: Path) -> None:
    """The real CRD with the real admission module (imported lazily) rejects a bad object."""
    crd_doc = yaml.safe_load((REPO / "crds" / "databasemigrations.yaml").read_text())
    example = yaml.safe_load((REPO / "examples" / "databasemigration.yaml").read_text())
    async with (
        ApiServer(registry=Registry()) as api,
        aiohttp.ClientSession(api.base_url) as session,
    ):
        client = Client(session)
        api.install_crd(crd_doc)
        path = "/apis/alembic-operator.dev/v1alpha1/namespaces/default/databasemigrations"
        created = await client.ok("POST", path, example)
        assert created["metadata"]["generation"] == 1
        broken = copy.deepcopy(example)
        broken["metadata"]["name"] = "broken"
        del broken["spec"]["image"]
        status, body = await client.post(path, broken)
    assert status == 422, body
    assert body["message"].startswith('DatabaseMigration.alembic-operator.dev "broken" is invalid')
    assert "spec.image is required" in body["message"]
    assert body["details"]["causes"]


async def test_a_crd_the_validator_cannot_compile_is_rejected() -> None:
    def refuse(crd_doc: dict[str, Any], version: str) -> Any:
        raise ValueError("not a structural schema: items must be set")

    registry = Registry(validator_factory=refuse)
    with pytest.raises(ApiError) as caught:
        registry.install_crd(crd("sprockets", "Sprocket"))
    assert caught.value.code == 422
    assert "not a structural schema" in caught.value.message
