"""The local stack: Azurite, docker-registry, a Docker engine in swarm mode, the local base image.

`up` starts what does not run yet, detached, and records in STATE_DIR/stack.json (default: the
repo's git-ignored .local/) what it started: pids, ports, data folders, and whether the engine and
the swarm were its own. `down` stops exactly that, plus any swarm service `local run` deployed, and
keeps the data (models, images), so the next `up` finds them again. Everything is on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

import requests

from ..clients.docker import docker, ensure_swarm, leave_swarm
from ..support.errors import ConfigError, StepError
from ..support.paths import local_state_dir
from ..support.processes import stop
from ..support.waiting import wait_for
from .azurite import ACCOUNT, Azurite
from .registry_server import LocalRegistry
from .server import HOST

log = logging.getLogger(__name__)

STATE_FILE = "stack.json"
# Fixed, so that URLs stay the same between runs: Azurite's and the registry's usual ports.
DEFAULT_AZURITE_PORT = 10000
DEFAULT_REGISTRY_PORT = 5000
MODEL_CONTAINER = "models"
# The store's credential: Azurite's well-known development account, spelled as the SDKs know it.
DEV_STORAGE = MappingProxyType({"AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"})
# How each detached process is recognised by its command line, so a reused pid is never stopped.
PROCESS_MARKERS = MappingProxyType({"azurite": "azurite", "registry": "docker-registry"})
DEFAULT_PORTS = MappingProxyType(
    {"azurite": DEFAULT_AZURITE_PORT, "registry": DEFAULT_REGISTRY_PORT}
)


@dataclass(frozen=True)
class StackStatus:
    """Each component (address, whether it answers, whether `up` started it), and what `up`
    started just now (None for `status`)."""

    components: Mapping[str, Mapping[str, object]]
    store: str
    registry: str
    state_dir: str
    started: tuple[str, ...] | None = None

    @property
    def healthy(self) -> bool:
        return all(c["healthy"] for c in self.components.values())

    def outputs(self) -> dict[str, object]:
        flat: dict[str, object] = {
            "healthy": self.healthy,
            "store": self.store,
            "registry": self.registry,
            "state_dir": self.state_dir,
        }
        if self.started is not None:
            flat["started"] = ",".join(self.started)
        return flat


@dataclass(frozen=True)
class StackStopped:
    stopped: tuple[str, ...]
    state_dir: str

    def outputs(self) -> dict[str, str]:
        return {"stopped": ",".join(self.stopped), "state_dir": self.state_dir}


@dataclass(frozen=True)
class Stack:
    """The recorded state of one local stack, and the addresses derived from it."""

    state_dir: Path
    record: dict

    @classmethod
    def load(cls, state_dir: Path | None = None) -> Stack:
        state_dir = Path(state_dir or local_state_dir()).resolve()
        path = state_dir / STATE_FILE
        try:
            record = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        except ValueError:
            raise ConfigError(f"{path} is not valid JSON: remove it and run local up") from None
        return cls(state_dir, record)

    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.record, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)

    @property
    def azurite_port(self) -> int:
        return self.record.get("azurite", {}).get("port", DEFAULT_AZURITE_PORT)

    @property
    def registry_port(self) -> int:
        return self.record.get("registry", {}).get("port", DEFAULT_REGISTRY_PORT)

    @property
    def store_url(self) -> str:
        return f"http://{HOST}:{self.azurite_port}/{ACCOUNT}/{MODEL_CONTAINER}"

    @property
    def registry_host(self) -> str:
        return f"{HOST}:{self.registry_port}"


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """One `local` command at a time per state folder; a second one stops at once."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StepError(
                f"another `python -m aiship local` command is using {state_dir}: "
                "wait for it to finish, or pass another --state-dir"
            ) from None
        yield


def up(
    state_dir: Path | None = None,
    *,
    azurite_port: int | None = None,
    registry_port: int | None = None,
) -> StackStatus:
    """Start what does not run yet; returns the stack's status and what was started now."""
    stack = Stack.load(state_dir)
    with locked(stack.state_dir):
        stack = Stack.load(stack.state_dir)  # as the last command left it
        started = start_missing(stack, azurite_port, registry_port)
    log.info("local stack %s (state: %s)", "up" if started else "already up", stack.state_dir)
    return replace(status(stack.state_dir), started=tuple(started))


def start_missing(stack: Stack, azurite_port: int | None, registry_port: int | None) -> list[str]:
    """The work of `up`, under the lock; saves the record after every component it starts."""
    from .base_image import image_id_of, usable_base_image
    from .docker_engine import PID_FILE, ensure_engine

    record, started = stack.record, []
    engine_dir = stack.state_dir / "dockerd"
    engine = ensure_engine(engine_dir)
    ours = engine.started or (
        record.get("engine", {}).get("started", False) and (engine_dir / PID_FILE).is_file()
    )
    record["engine"] = {"started": ours, "state_dir": str(engine_dir), "version": engine.version}
    if engine.started:
        started.append("engine")
    stack.save()

    if swarm_state() != "active":
        ensure_swarm()
        record["swarm"] = {"started": True}
        started.append("swarm")
    else:
        record.setdefault("swarm", {"started": False})
    stack.save()

    base = usable_base_image()
    record["base_image"] = {"name": base, "id": image_id_of(base)}
    stack.save()

    for name, start in (("azurite", _start_azurite), ("registry", _start_registry)):
        wanted = azurite_port if name == "azurite" else registry_port
        current = record.get(name, {})
        if current and healthy(name, current.get("port")) and _owned_or_foreign(name, current):
            if wanted and wanted != current["port"]:
                log.warning("%s keeps running on port %d (not %d)", name, current["port"], wanted)
            continue
        port = wanted or current.get("port") or DEFAULT_PORTS[name]
        if healthy(name, port):
            log.info("%s already answers on %s:%d: using it (down leaves it)", name, HOST, port)
            record[name] = {"port": port, "pid": None}
        else:
            if port_taken(port):
                flag = f"--{name}-port"
                raise ConfigError(
                    f"port {port} on {HOST} is taken by something that is not {name}: "
                    f"stop it, or pass {flag} with a free port"
                )
            record[name] = start(stack.state_dir, port)
            started.append(name)
        stack.save()
    ensure_container(stack)
    return started


def _start_azurite(state_dir: Path, port: int) -> dict:
    data = state_dir / "azurite"
    azurite = Azurite(port=port, location=data, log_path=state_dir / "azurite.log").start()
    return {"port": port, "pid": azurite.pid, "data": str(data)}


def _start_registry(state_dir: Path, port: int) -> dict:
    root = state_dir / "registry"
    registry = LocalRegistry(root, port=port).start()
    return {"port": port, "pid": registry.pid, "data": str(root)}


def _owned_or_foreign(name: str, current: dict) -> bool:
    """A recorded component still counts when its pid is still that program, or was not ours."""
    return current.get("pid") is None or process_is(current["pid"], PROCESS_MARKERS[name])


def ensure_container(stack: Stack) -> None:
    """The `models` container in Azurite (the first publish needs it)."""
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import BlobServiceClient

    azurite = Azurite(port=stack.azurite_port)
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    with contextlib.suppress(ResourceExistsError):
        service.create_container(MODEL_CONTAINER)


def down(state_dir: Path | None = None) -> StackStopped:
    """Stop what `up` (and `run`) started, newest first; data folders stay."""
    from .docker_engine import stop_engine

    stack = Stack.load(state_dir)
    with locked(stack.state_dir):
        stack = Stack.load(stack.state_dir)
        record, stopped = stack.record, []
        for service, where in record.get("services", {}).items():
            if where.get("pid"):  # a port-forward to the service on the local cluster
                if process_is(where["pid"], "port-forward"):
                    stop(where["pid"], f"the port-forward to {service}", timeout=10)
            elif docker_answers() and swarm_state() == "active":
                log.info("removing swarm service %s", service)
                docker(["service", "rm", service], timeout=60, check=False)
                wait_for(  # the task drains its requests first (stop grace period: 25 s)
                    lambda port=where["port"]: None if port_taken(port) else True,
                    timeout=60,
                    what=f"port {where['port']} of service {service} was not freed",
                    interval=0.5,
                )
            stopped.append(f"service {service}")
        record.pop("services", None)
        stack.save()
        if record.get("cluster", {}).get("started"):
            from .kube_cluster import down as cluster_down

            cluster_down(Path(record["cluster"]["state_dir"]))
            stopped.append("cluster")
        record.pop("cluster", None)
        for name in ("registry", "azurite"):
            pid = record.get(name, {}).get("pid")
            if pid and process_is(pid, PROCESS_MARKERS[name]):
                log.info("stopping %s (pid %d)", name, pid)
                stop(pid, name, timeout=15, group=True)
                stopped.append(name)
            record.pop(name, None)
            stack.save()
        if record.get("swarm", {}).get("started") and docker_answers():
            log.info("leaving the swarm that local up made")
            leave_swarm()
            stopped.append("swarm")
        record.pop("swarm", None)
        stack.save()
        engine = record.pop("engine", {})
        if engine.get("started") and stop_engine(Path(engine["state_dir"])):
            stopped.append("engine")
        stack.save()
    log.info("stopped: %s", ", ".join(stopped) or "nothing (local up started nothing)")
    return StackStopped(tuple(stopped), str(stack.state_dir))


def status(state_dir: Path | None = None) -> StackStatus:
    """Each component: its address, whether it answers, and whether `up` started it."""
    from .base_image import LOCAL_BASE_IMAGE, image_id_of

    stack = Stack.load(state_dir)
    record = stack.record
    engine = docker_answers()
    swarm = swarm_state() if engine else "unknown"
    base_image = record.get("base_image", {}).get("name", LOCAL_BASE_IMAGE)
    components = {
        "engine": {
            "address": os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"),
            "healthy": engine,
            "ours": record.get("engine", {}).get("started", False),
        },
        "swarm": {
            "address": f"{HOST}:2377",
            "healthy": swarm == "active",
            "ours": record.get("swarm", {}).get("started", False),
        },
        "base_image": {
            "address": base_image,
            "healthy": bool(engine and image_id_of(base_image)),
            "ours": False,
        },
        "azurite": {
            "address": stack.store_url,
            "healthy": healthy("azurite", stack.azurite_port),
            "ours": bool(record.get("azurite", {}).get("pid")),
        },
        "registry": {
            "address": f"http://{stack.registry_host}",
            "healthy": healthy("registry", stack.registry_port),
            "ours": bool(record.get("registry", {}).get("pid")),
        },
    }
    if record.get("cluster"):
        from .kube_cluster import status as cluster_status

        cluster = cluster_status(Path(record["cluster"]["state_dir"]))
        components["cluster"] = {
            "address": cluster.server or cluster.state_dir,
            "healthy": cluster.running,
            "ours": bool(record["cluster"].get("started")),
        }
    for name, service in record.get("services", {}).items():
        components[f"service {name}"] = {
            "address": service["url"],
            "healthy": healthy("service", service["port"]),
            "ours": True,
        }
    return StackStatus(components, stack.store_url, stack.registry_host, str(stack.state_dir))


def record_service(stack: Stack, name: str, port: int, url: str, pid: int | None = None) -> None:
    """Remember a service `local run` deployed, so that `local down` removes it: a swarm
    service, or (with PID) the port-forward that serves a cluster's service on this machine."""
    stack.record.setdefault("services", {})[name] = {"port": port, "url": url, "pid": pid}
    stack.save()


def healthy(name: str, port: int | None) -> bool:
    """Whether the component answers on 127.0.0.1:PORT as it should."""
    if not port:
        return False
    paths = {"azurite": f"/{ACCOUNT}?comp=list", "registry": "/v2/", "service": "/v2/health/ready"}
    try:
        response = requests.get(f"http://{HOST}:{port}{paths[name]}", timeout=2)
    except requests.RequestException:
        return False
    if name == "azurite":  # any answer from the blob service: 403 without credentials
        return "x-ms-request-id" in {k.lower() for k in response.headers}
    return response.status_code == 200


def port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((HOST, port)) == 0


def process_is(pid: int, marker: str) -> bool:
    """True when PID runs and its command line names `marker` (never a recycled pid)."""
    try:
        return marker in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def docker_answers() -> bool:
    from .docker_engine import engine_version

    return engine_version(timeout=10) is not None


def swarm_state() -> str:
    return docker(["info", "--format", "{{.Swarm.LocalNodeState}}"], timeout=30).strip()
