"""A tiny kopf operator for the end-to-end test: it reports on each Widget it sees.

It is started with ``kopf run -m tests.emulation.kopf_operator`` and finds the emulator through
``$EMULATOR_URL`` (a login handler instead of a kubeconfig).
"""

from __future__ import annotations

import os
from typing import Any

import kopf

EMULATOR_URL = "EMULATOR_URL"


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    return kopf.ConnectionInfo(server=os.environ[EMULATOR_URL], insecure=True)


@kopf.on.create("example.com", "v1", "widgets")
def widget_created(spec: kopf.Spec, body: kopf.Body, patch: kopf.Patch, **_: Any) -> dict[str, Any]:
    kopf.info(body, reason="Seen", message=f"A widget of size {spec.get('size')}")
    patch.status["phase"] = "Seen"
    return {"size": spec.get("size")}


@kopf.on.delete("example.com", "v1", "widgets")
def widget_deleted(body: kopf.Body, **_: Any) -> None:
    kopf.info(body, reason="Gone", message="The widget is being deleted")
