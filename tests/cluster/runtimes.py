"""How the test kubelet starts one container: as a local process, or with the real podman.

:class:`ProcessRuntime` (the default): an image is a local folder (:class:`ImageSpec`), container
paths are rewritten to local ones, the process runs on the host (:mod:`.processes`).

:class:`PodmanRuntime` (``TestKubelet(..., runtime="podman")``): an image reference maps to a real
local image (:class:`~.podman.LocalImage`); each container is ``podman create`` (flags from
:func:`~.podman.container_flags`, ``--network=host`` so services on 127.0.0.1 are reachable,
``--pull=never``: nothing is ever pulled), then ``podman start --attach`` with its output appended
to the log file the kubelet serves, then ``podman inspect`` for the exit code and ``podman rm``.
Containers are named from the pod's uid and the container's name (``tk-<uid>-[init-]<name>``)
and labelled with the kubelet's work folder; the kubelet removes each one once it has read its
state and, when it stops, any of its label still there. A reference with a digest runs only the
local image with that digest (else ErrImagePull); ``imageID`` is the pod's repository ``@`` the
local image's digest.

Both hand the kubelet a :class:`Started`: ``wait()`` (the exit code, or :class:`StartError` when
the container never started), ``stop(grace)`` (SIGTERM, SIGKILL after the grace), ``close()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from tests.cluster.podman import (
    ImageInfo,
    LocalImage,
    container_flags,
    image_id_for,
    parse_image_info,
    podman_async,
    podman_path,
    termination_file,
)
from tests.cluster.podnet import PodSandbox
from tests.cluster.processes import (
    DEFAULT_TERMINATION_PATH,
    ConfigError,
    ImageSpec,
    PathRewriter,
    StartError,
    base_environment,
    build_argv,
    exit_code_of,
    image_id,
    start_process,
    stop_process,
    working_directory,
)

LABEL = "io.alembic-operator.test-kubelet"


class ImagePullError(Exception):
    """The image cannot be had (kubelet: ErrImagePull)."""


class CreateError(ConfigError):
    """The runtime refused to create the container (kubelet: CreateContainerError, retried)."""

    reason = "CreateContainerError"


@dataclasses.dataclass
class Launch:
    """One container to start: the pod, the container, its resolved env and its host files."""

    pod: Mapping[str, Any]
    container: Mapping[str, Any]
    init: bool
    env: dict[str, str]  # the container's own envFrom/env, resolved
    volumes: dict[str, Path]  # volume name -> host folder
    termination: Path
    log_path: Path
    sandbox: PodSandbox | None = None  # the pod's own namespaces (process mode, opt-in)

    @property
    def pod_name(self) -> str:
        return str(self.pod["metadata"]["name"])

    @property
    def uid(self) -> str:
        return str(self.pod["metadata"]["uid"])


class Started(Protocol):
    argv: list[str]
    cwd: str
    env: dict[str, str]
    container_id: str
    image_id: str
    details: dict[str, Any]  # podman inspect of the container (empty for processes)

    @property
    def pid(self) -> int | None: ...

    async def wait(self) -> int: ...

    async def stop(self, grace: float) -> int: ...

    async def close(self) -> None: ...


# --- local processes ----------------------------------------------------------------------------


@dataclasses.dataclass
class _Process:
    process: asyncio.subprocess.Process
    argv: list[str]
    cwd: str
    env: dict[str, str]
    container_id: str
    image_id: str
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def pid(self) -> int | None:
        return self.process.pid

    async def wait(self) -> int:
        return exit_code_of(await self.process.wait())

    async def stop(self, grace: float) -> int:
        return await stop_process(self.process, grace)

    async def close(self) -> None:
        if self.process.returncode is None:  # cancelled: never leave a process behind
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()


class ProcessRuntime:
    name = "local://processes"

    async def start(self, launch: Launch, image: Any) -> Started:
        if not isinstance(image, ImageSpec):
            raise ImagePullError(f"{image!r} is not a local folder image (ImageSpec)")
        container = launch.container
        path = str(container.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH)
        mapping = {path: str(launch.termination)}
        for mount in container.get("volumeMounts") or []:
            local = launch.volumes.get(str(mount.get("name")))
            if local is not None:
                target = local / str(mount["subPath"]) if mount.get("subPath") else local
                target.mkdir(parents=True, exist_ok=True)
                mapping[str(mount["mountPath"])] = str(target)
        rewriter = PathRewriter(mapping)
        tmp = rewriter.local_dir("/tmp") if "/tmp" in rewriter.mapping else None
        env = base_environment(launch.pod_name, tmp)
        env.update(image.env)
        env.update({key: rewriter.rewrite(value) for key, value in launch.env.items()})
        argv = build_argv(container, image, env, rewriter)
        cwd = working_directory(container, image, rewriter)
        command = argv if launch.sandbox is None else launch.sandbox.wrap(argv, cwd)
        process = await start_process(command, cwd, env, launch.log_path)
        return _Process(
            process,
            argv,
            str(cwd),
            env,
            container_id=f"local://{launch.uid}/{container['name']}",
            image_id=image_id(str(container.get("image")), image),
        )

    async def cleanup(self) -> None:
        """Nothing outlives its pod's task (processes are killed in ``close``)."""


# --- podman -------------------------------------------------------------------------------------


def container_name(launch: Launch) -> str:
    prefix = "init-" if launch.init else ""
    return f"tk-{launch.uid}-{prefix}{launch.container['name']}"


@dataclasses.dataclass
class _Container:
    name: str
    argv: list[str]
    cwd: str
    env: dict[str, str]
    container_id: str
    image_id: str
    log_path: Path
    log_offset: int
    client: asyncio.subprocess.Process | None = None
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    removed: bool = False

    @property
    def pid(self) -> int | None:
        return self.client.pid if self.client is not None else None

    async def attach(self) -> None:
        """``podman start --attach``: the container's stdout and stderr go to the log file."""
        with self.log_path.open("ab") as log:
            self.client = await asyncio.create_subprocess_exec(
                podman_path(),
                "start",
                "--attach",
                self.name,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    async def _inspect(self) -> dict[str, Any]:
        code, out, err = await podman_async("container", "inspect", self.name)
        if code != 0:
            raise StartError(f"podman inspect {self.name}: {err.strip()}")
        [data] = json.loads(out)
        self.details = dict(data)
        return self.details

    async def wait(self) -> int:
        assert self.client is not None
        await self.client.wait()
        state = (await self._inspect()).get("State") or {}
        if str(state.get("StartedAt", "")).startswith("0001-") or state.get("Status") == "created":
            # Never started (exec failed): podman's error went to the log; it is not the log's.
            with self.log_path.open("rb+") as log:
                log.seek(self.log_offset)
                message = log.read().decode(errors="replace").strip()
                log.truncate(self.log_offset)
            raise StartError(str(state.get("Error") or message or "the container did not start"))
        if state.get("OOMKilled"):
            self.details["reason"] = "OOMKilled"
        return int(state.get("ExitCode", 0))

    async def stop(self, grace: float) -> int:
        seconds = max(0, math.ceil(grace))
        await podman_async("stop", "--time", str(seconds), self.name, seconds=seconds + 60)
        return await self.wait()

    async def close(self) -> None:
        if self.client is not None and self.client.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.client.kill()
        if not self.removed:
            await podman_async("rm", "--force", "--time", "0", self.name)
            self.removed = True


class PodmanRuntime:
    """Containers of one kubelet, with the real podman (module doc)."""

    def __init__(self, instance: str, *, network: str = "host") -> None:
        self.instance = instance  # the label value that marks this kubelet's containers
        self.network = network
        self.name = "podman://"

    async def image(self, reference: str, image: LocalImage) -> ImageInfo:
        code, out, err = await podman_async("image", "inspect", image.name)
        if code != 0:
            raise ImagePullError(
                f"local image {image.name} (for {reference}) is missing: run scripts/image.sh "
                f"(make image): {err.strip()}"
            )
        info = parse_image_info(out)
        if "@" in reference and reference.rsplit("@", 1)[1] not in info.digests():
            raise ImagePullError(
                f"{reference}: manifest unknown (the local image {image.name} is {info.digest})"
            )
        return info

    async def start(self, launch: Launch, image: Any) -> Started:
        if isinstance(image, str):
            image = LocalImage(image)
        if not isinstance(image, LocalImage):
            raise ImagePullError(f"{image!r} is not a local container image (LocalImage)")
        if launch.sandbox is not None:
            raise StartError("pod networks (PodNetwork) are for process mode only")
        reference = str(launch.container.get("image"))
        info = await self.image(reference, image)
        env = {**image.env, **launch.env}
        flags, args = container_flags(
            launch.pod,
            launch.container,
            env=env,
            volumes=launch.volumes,
            termination=termination_file(launch.termination),
            image_user=info.user,
            network=self.network,
        )
        name = container_name(launch)
        await podman_async("rm", "--force", "--time", "0", name)  # a previous attempt's
        argv = [
            "podman",
            "create",
            "--name",
            name,
            "--pull=never",
            "--label",
            f"{LABEL}={self.instance}",
            "--label",
            f"{LABEL}.pod={launch.pod['metadata']['namespace']}/{launch.pod_name}",
            "--uts=private",
            f"--hostname={launch.pod_name[:63]}",
            *flags,
            image.name,
            *args,
        ]
        code, out, err = await podman_async(*argv[1:])
        if code != 0:
            raise CreateError(f"podman create failed: {err.strip()}")
        cwd = str(launch.container.get("workingDir") or info.workdir)
        started = _Container(
            name=name,
            argv=argv,
            cwd=cwd,
            env=env,
            container_id=f"podman://{out.strip()}",
            image_id=image_id_for(reference, info),
            log_path=launch.log_path,
            log_offset=launch.log_path.stat().st_size if launch.log_path.exists() else 0,
        )
        try:
            await started.attach()
        except BaseException:
            await started.close()
            raise
        return started

    async def leftovers(self) -> list[str]:
        code, out, _ = await podman_async(
            "ps", "--all", "--filter", f"label={LABEL}={self.instance}", "--format", "{{.Names}}"
        )
        return out.split() if code == 0 else []

    async def cleanup(self) -> None:
        """Remove every container of this kubelet that is still there."""
        names = await self.leftovers()
        if names:
            await podman_async("rm", "--force", "--time", "0", *names)
