"""How :class:`~.kubelet.LocalKubelet` turns a pod's containers into local processes.

Pure helpers (no HTTP, no event loop state) plus the process plumbing:

- :class:`ImageSpec` maps an image reference to a local folder and an interpreter;
- :class:`PathRewriter` replaces container paths (volume mounts, the termination-message file) in
  ``command``, ``args``, env values and ``workingDir`` with local paths;
- :func:`resolve_env` builds a container's environment the way kubelet does (``envFrom`` first,
  then ``env``; ``$(VAR)`` references; ``secretKeyRef``/``configMapKeyRef``/``fieldRef``);
- :func:`build_argv` resolves the executable; :func:`working_directory` the cwd;
- :func:`start_process` / :func:`stop_process` start a process in its own session and end it with
  SIGTERM, then SIGKILL after the grace period.

Environment of a process: it starts **empty**, then gets ``PATH`` (the directory of the
kubelet's own interpreter prepended to the host's ``PATH``), ``HOME``, ``LANG``, ``LC_ALL``,
``TZ`` and ``PYTHONPATH`` from the host when set there (:data:`INHERITED_ENV`), then
``HOSTNAME`` (the pod name), ``TMPDIR`` (the local folder of a volume mounted at ``/tmp``, if
any), then the image's :attr:`ImageSpec.env`, then the container's own ``envFrom``/``env``, which
win. Nothing else of the host's environment leaks in (no ``DATABASE_URL``, no ``KUBECONFIG``).

This module never imports Alembic or SQLAlchemy and never talks to the apiserver.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import os
import re
import shutil
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "PYTHONPATH")
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
MAX_TERMINATION_MESSAGE = 4096
_FALLBACK_LOG_LINES = 80
_FALLBACK_LOG_BYTES = 2048
_PYTHON_NAME = re.compile(r"^python(\d+(\.\d+)?)?$")
_VAR_REF = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")

# (kind, namespace, name) -> the object's ``data`` decoded to text, or None when absent.
Lookup = Callable[[str, str, str], Awaitable[dict[str, str] | None]]


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """A container image played by a local folder.

    - ``root``: the folder standing for the image's files (the example image: ``migrations/``).
    - ``python``: the interpreter run for ``python``, ``python3``, ``python3.X`` (any directory
      prefix) or one of ``python_aliases`` as ``command[0]``.
    - ``workdir``: the cwd of a container without ``workingDir`` (default: ``root``).
    - ``env``: the image's ``ENV`` (below the container's own env).
    - ``entrypoint``: the image's ``ENTRYPOINT`` for a container without ``command`` (its
      ``args`` follow it).

    An absolute ``workingDir`` (not under a volume mount) is resolved under ``root`` by the
    longest suffix of the path that exists there as a directory; when none does, it is ``root``
    itself. So ``/app`` and ``/`` both mean ``root`` unless ``root/app`` exists, and
    ``/app/db`` means ``root/db`` when ``root/app/db`` does not exist. A relative ``workingDir`` is
    taken under ``workdir``.
    """

    root: Path
    python: str = sys.executable
    workdir: Path | None = None
    python_aliases: tuple[str, ...] = ()
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    entrypoint: tuple[str, ...] = ()

    def is_python(self, executable: str) -> bool:
        """Whether ``command[0]`` means this image's Python interpreter."""
        name = PurePosixPath(executable).name
        return executable in self.python_aliases or bool(_PYTHON_NAME.match(name))


class ConfigError(Exception):
    """A container's configuration cannot be resolved yet (kubelet: CreateContainerConfigError)."""

    reason = "CreateContainerConfigError"


class StartError(Exception):
    """A container's process cannot be started (kubelet: StartError, exit code 128)."""

    reason = "StartError"


class PathRewriter:
    """Replace container paths by local ones, longest first, on path-component boundaries.

    ``/tmp`` is replaced in ``/tmp``, ``/tmp/x`` and ``--dir=/tmp``, never in ``/tmpfs`` or
    ``/var/tmp``.
    """

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self.mapping = {k.rstrip("/") or "/": v for k, v in mapping.items() if k}
        ordered = sorted((k for k in self.mapping if k != "/"), key=len, reverse=True)
        self._pattern = (
            re.compile(r"(?<![\w./-])(" + "|".join(re.escape(k) for k in ordered) + r")(?![\w.-])")
            if ordered
            else None
        )

    def rewrite(self, text: str) -> str:
        """``text`` with every container path replaced by its local path."""
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: self.mapping[m.group(1)], text)

    def local_dir(self, path: str) -> Path | None:
        """The local path of a container path under a mount (None when not under one)."""
        for mount in sorted(self.mapping, key=len, reverse=True):
            if path == mount or path.startswith(mount.rstrip("/") + "/"):
                rest = path[len(mount) :].lstrip("/")
                return Path(self.mapping[mount]) / rest if rest else Path(self.mapping[mount])
        return None


def expand_references(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: defined variables are replaced, ``$$`` escapes ``$``."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _VAR_REF.sub(replace, text)


def field_value(pod: Mapping[str, Any], field_path: str, pod_ip: str = "127.0.0.1") -> str:
    """The downward API's value of ``field_path`` for ``pod`` (ConfigError if unsupported)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": "127.0.0.1",
        "status.podIP": pod_ip,
    }
    if field_path in simple:
        return str(simple[field_path] or "")
    found = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", field_path)
    if found:
        return str((meta.get(found.group(1)) or {}).get(found.group(2), ""))
    raise ConfigError(f"unsupported fieldRef fieldPath {field_path!r}")


async def _source(
    lookup: Lookup, kind: str, namespace: str, name: str, optional: bool
) -> dict[str, str] | None:
    data = await lookup(kind, namespace, name)
    if data is None and not optional:
        raise ConfigError(f'{kind.lower()} "{name}" not found')
    return data


async def resolve_env(
    container: Mapping[str, Any],
    pod: Mapping[str, Any],
    lookup: Lookup,
    *,
    pod_ip: str = "127.0.0.1",
) -> dict[str, str]:
    """The container's own environment (``envFrom``, then ``env``), references expanded.

    Raises :class:`ConfigError` with kubelet's message for a missing Secret, ConfigMap or key
    (unless marked ``optional``).
    """
    namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = str(source.get("prefix") or "")
        for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
            ref = source.get(key)
            if ref:
                data = await _source(
                    lookup, kind, namespace, ref["name"], bool(ref.get("optional"))
                )
                for name, value in (data or {}).items():
                    env[prefix + name] = value
    for var in container.get("env") or []:
        name = str(var["name"])
        if "valueFrom" not in var:
            env[name] = expand_references(str(var.get("value") or ""), env)
            continue
        value_from = var["valueFrom"] or {}
        if "fieldRef" in value_from:
            env[name] = field_value(pod, str(value_from["fieldRef"].get("fieldPath")), pod_ip)
            continue
        for kind, key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
            ref = value_from.get(key)
            if not ref:
                continue
            optional = bool(ref.get("optional"))
            data = await _source(lookup, kind, namespace, ref["name"], optional)
            if data is not None and ref["key"] in data:
                env[name] = data[ref["key"]]
            elif not optional:
                raise ConfigError(
                    f"couldn't find key {ref['key']} in {kind} {namespace}/{ref['name']}"
                )
            break
        else:
            raise ConfigError(f"unsupported valueFrom for env {name!r}: {sorted(value_from)}")
    return env


def decode_data(kind: str, obj: Mapping[str, Any]) -> dict[str, str]:
    """A Secret's or ConfigMap's values as text (Secrets: base64 ``data`` or ``stringData``)."""
    result: dict[str, str] = {}
    if kind == "Secret":
        for key, value in (obj.get("data") or {}).items():
            result[key] = base64.b64decode(str(value)).decode("utf-8", errors="replace")
    else:
        result.update({k: str(v) for k, v in (obj.get("data") or {}).items()})
    result.update({k: str(v) for k, v in (obj.get("stringData") or {}).items()})
    return result


def base_environment(pod_name: str, tmp_dir: Path | None) -> dict[str, str]:
    """What every process starts from (see the module doc)."""
    env = {key: os.environ[key] for key in INHERITED_ENV if key in os.environ}
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in (bin_dir, env.get("PATH", os.defpath)) if p)
    env["HOSTNAME"] = pod_name
    if tmp_dir is not None:
        env["TMPDIR"] = str(tmp_dir)
    return env


def build_argv(
    container: Mapping[str, Any],
    image: ImageSpec,
    env: Mapping[str, str],
    rewriter: PathRewriter,
) -> list[str]:
    """The local argv of a container: references expanded, paths rewritten, executable resolved.

    ``python``-like names run :attr:`ImageSpec.python`; ``alembic-operator`` runs
    ``sys.executable -m alembic_operator``; any other name is looked up on the process's
    ``PATH``; an absolute path is used as is (after rewriting).
    """
    command = [str(c) for c in container.get("command") or []]
    args = [str(a) for a in container.get("args") or []]
    if not command:
        if not image.entrypoint:
            raise StartError("no command specified and the image has no entrypoint")
        command = list(image.entrypoint)
    argv = [rewriter.rewrite(expand_references(part, env)) for part in [*command, *args]]
    executable = argv[0]
    if image.is_python(executable):
        return [image.python, *argv[1:]]
    if PurePosixPath(executable).name == "alembic-operator":
        return [sys.executable, "-m", "alembic_operator", *argv[1:]]
    if os.path.isabs(executable):
        if not os.access(executable, os.X_OK):
            raise StartError(f'exec: "{executable}": stat {executable}: no such file or directory')
        return argv
    found = shutil.which(executable, path=env.get("PATH", os.defpath))
    if found is None:
        raise StartError(f'exec: "{executable}": executable file not found in $PATH')
    return [found, *argv[1:]]


def working_directory(
    container: Mapping[str, Any], image: ImageSpec, rewriter: PathRewriter
) -> Path:
    """The local cwd of a container (the rule is in :class:`ImageSpec`); StartError if absent."""
    found = _working_directory(container, image, rewriter)
    if not found.is_dir():
        raise StartError(f"chdir to cwd ({found}) set in config.json failed: no such directory")
    return found


def _working_directory(
    container: Mapping[str, Any], image: ImageSpec, rewriter: PathRewriter
) -> Path:
    default = image.workdir or image.root
    wanted = str(container.get("workingDir") or "")
    if not wanted:
        return default
    if not wanted.startswith("/"):
        return default / wanted
    mounted = rewriter.local_dir(wanted)
    if mounted is not None:
        return mounted
    parts = PurePosixPath(wanted).parts[1:]
    for start in range(len(parts)):
        candidate = image.root.joinpath(*parts[start:])
        if candidate.is_dir():
            return candidate
    return image.root


def read_termination_message(path: Path, policy: str, exit_code: int, log_path: Path | None) -> str:
    """The message kubelet reports: the file (≤ 4096 bytes), or the log tail as a fallback."""
    try:
        data = path.read_bytes()[:MAX_TERMINATION_MESSAGE]
    except OSError:
        data = b""
    if not data and exit_code != 0 and policy == "FallbackToLogsOnError" and log_path:
        with contextlib.suppress(OSError):
            lines = log_path.read_bytes().splitlines(keepends=True)[-_FALLBACK_LOG_LINES:]
            data = b"".join(lines)[-_FALLBACK_LOG_BYTES:]
    return data.decode("utf-8", errors="replace")


async def start_process(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str], log_path: Path
) -> asyncio.subprocess.Process:
    """Start a process in its own session, stdout and stderr appended to ``log_path``."""
    with log_path.open("ab") as log:
        try:
            return await asyncio.create_subprocess_exec(
                *argv,
                cwd=str(cwd),
                env=dict(env),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise StartError(f"exec: {argv[0]!r}: {exc}") from exc


def exit_code_of(returncode: int) -> int:
    """A Kubernetes exit code: a process killed by signal N exits with 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


async def stop_process(process: asyncio.subprocess.Process, grace: float) -> int:
    """SIGTERM the process group, SIGKILL it after ``grace`` seconds; the exit code."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=max(grace, 0.0))
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    assert process.returncode is not None
    return exit_code_of(process.returncode)


def image_id(reference: str, spec: ImageSpec) -> str:
    """The imageID a container status reports: ``<repository>@sha256:<digest of the folder>``.

    The digest covers the folder's file names, sizes and modification times (dot folders and
    ``__pycache__`` left out), so a folder changed in place, or another folder, is another image.
    """
    digest = hashlib.sha256(repr(sorted(spec.env.items())).encode())
    for directory, folders, files in os.walk(spec.root):
        folders[:] = sorted(f for f in folders if not f.startswith(".") and f != "__pycache__")
        for name in sorted(files):
            path = os.path.join(directory, name)
            stat = os.stat(path)
            relative = os.path.relpath(path, spec.root)
            digest.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    repository = reference.split("@", 1)[0]
    last = repository.rsplit("/", 1)[-1]
    if ":" in last:
        repository = repository.rsplit(":", 1)[0]
    return f"{repository}@sha256:{digest.hexdigest()}"
