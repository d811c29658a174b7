"""kopf wiring: settings, login, and watch events that trigger the reconciler. Thin by design.

Only ``on.event`` handlers: they need no finalizer (deleting a DatabaseMigration never hangs
when the operator is gone) and no kopf state in annotations (no extra API writes). The
reconciler owns retries and requeues. Settings are documented in docs/operator.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import kopf

from alembic_operator import __version__
from alembic_operator.controller import (
    metrics,
    serving,
    webhooks,  # noqa: F401 - registers the admission handler
)
from alembic_operator.controller.admissionreads import MigrationReads
from alembic_operator.controller.caches import CachePolicy
from alembic_operator.controller.certificates import CertificateManager
from alembic_operator.controller.credentials import (
    bearer_token,
    load_config,
    login_fields,
    token_subject,
)
from alembic_operator.controller.kubeapi import PLURAL, KubeApi
from alembic_operator.controller.leadership import Elector
from alembic_operator.controller.ownapi import OwnApi
from alembic_operator.controller.persistence import NoDiffBase, NoProgress, has_change_handlers
from alembic_operator.controller.reconcilers import Reconciler
from alembic_operator.core.jobs import LABEL_MIGRATION_UID
from alembic_operator.model.spec import GROUP, VERSION

RUNNER_IMAGE_ENV = "ALEMBIC_OPERATOR_RUNNER_IMAGE"
DEFAULT_RUNNER_IMAGE = f"ghcr.io/alembic-operator/alembic-operator:{__version__}"


def configure(settings: kopf.OperatorSettings) -> None:
    """The deliberate kopf settings (docs/operator.md, "kopf settings")."""
    # Events are posted by the operator itself (redacted, only after the status they report);
    # kopf would otherwise turn its own log lines into Events.
    settings.posting.enabled = False
    # No change handlers, so kopf has nothing to persist: skip its per-event copies.
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.persistence.progress_storage = NoProgress()
    # Watches: reconnect well before proxies cut idle streams; a dropped one resumes quickly.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    """The same credentials the operator's own client uses (in-cluster, or ``$KUBECONFIG``)."""
    return kopf.ConnectionInfo(**login_fields(load_config()))


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    if has_change_handlers(kopf.get_default_registry()):
        raise kopf.PermanentError("a change handler needs kopf's persistence: see persistence.py")
    configure(settings)
    try:
        options = serving.Options.from_env()
    except serving.OptionsError as exc:
        raise kopf.PermanentError(str(exc)) from exc
    try:
        policy = CachePolicy.from_env()
    except ValueError as exc:
        raise kopf.PermanentError(str(exc)) from exc
    runner_image = os.environ.get(RUNNER_IMAGE_ENV) or DEFAULT_RUNNER_IMAGE
    config = await asyncio.to_thread(load_config)
    api = KubeApi(config, policy=policy)
    await api.open()  # one HTTP session for the operator's lifetime, closed in stop()
    memo["api"] = api
    # The webhook lets the operator's own requests (its unpause) through: who it is.
    memo["username"] = token_subject(bearer_token(config))
    reconciler = Reconciler(api, runner_image=runner_image, leading=not options.leader_election)
    memo["reconciler"] = reconciler
    # The webhook's consistent reads of a namespace's migrations (controller/webhooks.py).
    memo["migration_reads"] = MigrationReads(api, within=options.admission_read_seconds)
    # The one cache policy's resync (controller/caches.py): a deletion the watch missed ends.
    memo["tasks"] = [asyncio.create_task(reconciler.resync(), name="resync")]
    own = OwnApi(config)  # the Lease and the certificate Secret (controller/ownapi.py)
    memo["own"] = own
    certificates = None
    if options.certificate is not None:
        certificates = CertificateManager(own, options.certificate)
        memo["tasks"].append(asyncio.create_task(certificates.run(), name="certificates"))
    # The gate's admission webhook (every replica serves it): off unless a port is given.
    server = serving.webhook_server(options, certificates)
    settings.admission.server = server if server is not None else serving.no_server
    if options.leader_election:
        elector = Elector(
            own,
            namespace=options.namespace,
            name=options.lease_name,
            identity=options.identity,
            on_started=reconciler.activate,
            on_stopped=reconciler.deactivate,
        )
        memo["elector"] = elector
        memo["tasks"].append(asyncio.create_task(elector.run(), name="leader election"))
    log = logging.getLogger("alembic_operator")
    log.info("runner image: %s; cache resync every %gs", runner_image, policy.resync_seconds)
    if options.leader_election:
        log.info("leader election on Lease %s/%s as %s", options.namespace,
                 options.lease_name, options.identity)  # fmt: skip
    # A fresh registry per start; the port comes from --metrics-port (via the environment).
    metrics.start(metrics.port_from_env())


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    tasks = memo.get("tasks") or []
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if memo.get("reconciler") is not None:
        await memo["reconciler"].close()
    if memo.get("migration_reads") is not None:  # the webhook's reads (controller/webhooks.py)
        await memo["migration_reads"].close()
    if memo.get("elector") is not None:
        await memo["elector"].release()  # a standby takes over at its next look
    for api in ("own", "api"):
        if memo.get(api) is not None:
            await memo[api].close()
    metrics.stop()


@kopf.on.event(GROUP, VERSION, PLURAL)
async def migration_event(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    meta, reconciler = body.metadata, memo["reconciler"]
    key = (str(meta.namespace), str(meta.name))
    if type == "DELETED":
        memo["api"].migration_gone(*key, uid=str(meta.uid))
        reconciler.forget(str(meta.uid), key)
        metrics.active().forget(*key, uid=str(meta.uid))
        reconciler.migration_deleted(key)  # releases the Deployments it held
        return
    reconciler.remember(str(meta.uid), key)
    memo["api"].migration_seen(body)  # the reconcile reads it instead of a GET
    reconciler.migration_seen(body)
    reconciler.trigger(key)


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_MIGRATION_UID: kopf.PRESENT})
async def job_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    # The reconcile reads the Job from here instead of a GET (controller/caches.py).
    if type == "DELETED":
        memo["api"].jobs.job_gone(body)
    else:
        memo["api"].jobs.job_seen(body)
    memo["reconciler"].trigger_uid(body.metadata.labels.get(LABEL_MIGRATION_UID))


@kopf.on.event("v1", "pods", labels={LABEL_MIGRATION_UID: kopf.PRESENT})
async def pod_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    # The runner's result is in the pod the moment its container ends: act on it then.
    if type == "DELETED":
        memo["api"].jobs.pod_gone(body)
        memo["api"].logs.forget(str(body.metadata.uid))
    else:
        memo["api"].jobs.pod_seen(body)
    memo["reconciler"].trigger_uid(body.metadata.labels.get(LABEL_MIGRATION_UID))


@kopf.on.event("v1", "pods")
async def pod_gate_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    # Pods the webhook gated wait here until their migration allows them (controller/podgates.py).
    memo["reconciler"].pods.pod_event(type, body)


@kopf.on.event("apps", "v1", "deployments")
async def deployment_event(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    # Either apply order works: a Deployment changed before its migration is held from here.
    memo["reconciler"].deployment_event(type, body)
