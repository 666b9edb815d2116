"""The local stack: Azurite, docker-registry, a Docker engine in swarm mode, the local base image,
and what `local run` adds to it (the local cluster, the service it deployed).

The components are one ordered list (COMPONENTS): `up` walks it forward and starts what does not
run yet, detached, recording in STATE_DIR/stack.json (default: the project's git-ignored
.local/) what it started: pids, ports, data folders, and whether the engine and the swarm were
its own (a typed StackRecord). `down` walks it backward and stops exactly that, and keeps the
data (models, images), so the next `up` finds them again; `status` walks it and asks each how
it is. Everything is on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, TypeVar

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


# --- the record: what `up` and `local run` started, as stack.json keeps it --------------------


@dataclass
class Engine:
    started: bool  # `up` started it: `down` stops it
    state_dir: str
    version: str | None = None


@dataclass
class Swarm:
    started: bool  # `up` made it: `down` leaves it


@dataclass
class BaseImage:
    name: str
    id: str | None = None


@dataclass
class Daemon:
    """A detached stand-in on 127.0.0.1:PORT; no pid when it answered there before `up`."""

    port: int
    pid: int | None = None
    data: str | None = None


@dataclass
class Cluster:
    started: bool
    state_dir: str


@dataclass
class Service:
    """A service `local run` deployed: a swarm service, or (with a pid) the port-forward that
    serves the cluster's Service on this machine."""

    port: int
    url: str
    pid: int | None = None


Part = TypeVar("Part")


def _part(kind: type[Part], data: Any) -> Part | None:
    if data is None:
        return None
    known = {f.name for f in fields(kind)}  # type: ignore[arg-type]
    return kind(**{name: value for name, value in dict(data).items() if name in known})


@dataclass
class StackRecord:
    """stack.json: one entry per component that `up` or `local run` met or started."""

    engine: Engine | None = None
    swarm: Swarm | None = None
    base_image: BaseImage | None = None
    azurite: Daemon | None = None
    registry: Daemon | None = None
    cluster: Cluster | None = None
    services: dict[str, Service] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StackRecord:
        return cls(
            engine=_part(Engine, data.get("engine")),
            swarm=_part(Swarm, data.get("swarm")),
            base_image=_part(BaseImage, data.get("base_image")),
            azurite=_part(Daemon, data.get("azurite")),
            registry=_part(Daemon, data.get("registry")),
            cluster=_part(Cluster, data.get("cluster")),
            services={
                name: service
                for name, where in (data.get("services") or {}).items()
                if (service := _part(Service, where))
            },
        )

    def to_json(self) -> dict[str, Any]:
        return {name: value for name, value in asdict(self).items() if value not in (None, {})}


@dataclass(frozen=True)
class Health:
    """One component as `status` sees it."""

    address: str
    healthy: bool
    ours: bool  # `down` stops it


@dataclass(frozen=True)
class StackStatus:
    """Each component (address, whether it answers, whether `up` started it), and what `up`
    started just now (None for `status`)."""

    components: Mapping[str, Health]
    store: str
    registry: str
    state_dir: str
    started: tuple[str, ...] | None = None

    @property
    def healthy(self) -> bool:
        return all(c.healthy for c in self.components.values())

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
    record: StackRecord

    @classmethod
    def load(cls, state_dir: Path | None = None) -> Stack:
        state_dir = Path(state_dir or local_state_dir()).resolve()
        path = state_dir / STATE_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
            return cls(state_dir, StackRecord.from_json(data))
        except (ValueError, TypeError, AttributeError):
            raise ConfigError(f"{path} is not a stack record: remove it and run local up") from None

    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.record.to_json(), indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)

    @property
    def azurite_port(self) -> int:
        return self.record.azurite.port if self.record.azurite else DEFAULT_AZURITE_PORT

    @property
    def registry_port(self) -> int:
        return self.record.registry.port if self.record.registry else DEFAULT_REGISTRY_PORT

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


# --- the components, in the order `up` starts them ---------------------------------------------


@dataclass(frozen=True)
class Wanted:
    """The ports `up` was asked for (None: the recorded one, else the usual one)."""

    azurite: int | None = None
    registry: int | None = None


class Probe:
    """What `status` asks of the engine, asked once however many components need it."""

    @cached_property
    def engine(self) -> bool:
        return docker_answers()

    @cached_property
    def swarm(self) -> str:
        return swarm_state() if self.engine else "unknown"


class Component(Protocol):
    name: str

    def up(self, stack: Stack, wanted: Wanted) -> bool:
        """Start it unless it runs; True when it started now."""

    def down(self, stack: Stack) -> list[str]:
        """Stop what of it `up` (or `local run`) started; what it stopped."""

    def status(self, stack: Stack, probe: Probe) -> dict[str, Health]:
        """Its health, by the name `status` shows it under (none when it is not there)."""


class EngineComponent:
    name = "engine"

    def up(self, stack: Stack, wanted: Wanted) -> bool:
        from .docker_engine import PID_FILE, ensure_engine

        engine_dir = stack.state_dir / "dockerd"
        engine = ensure_engine(engine_dir)
        before = stack.record.engine
        ours = engine.started or bool(
            before and before.started and (engine_dir / PID_FILE).is_file()
        )
        stack.record.engine = Engine(ours, str(engine_dir), engine.version)
        return engine.started

    def down(self, stack: Stack) -> list[str]:
        from .docker_engine import stop_engine

        engine, stack.record.engine = stack.record.engine, None
        return (
            ["engine"] if engine and engine.started and stop_engine(Path(engine.state_dir)) else []
        )

    def status(self, stack: Stack, probe: Probe) -> dict[str, Health]:
        address = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        ours = bool(stack.record.engine and stack.record.engine.started)
        return {self.name: Health(address, probe.engine, ours)}


class SwarmComponent:
    name = "swarm"

    def up(self, stack: Stack, wanted: Wanted) -> bool:
        if swarm_state() == "active":
            stack.record.swarm = stack.record.swarm or Swarm(started=False)
            return False
        ensure_swarm()
        stack.record.swarm = Swarm(started=True)
        return True

    def down(self, stack: Stack) -> list[str]:
        swarm, stack.record.swarm = stack.record.swarm, None
        if swarm and swarm.started and docker_answers():
            log.info("leaving the swarm that local up made")
            leave_swarm()
            return [self.name]
        return []

    def status(self, stack: Stack, probe: Probe) -> dict[str, Health]:
        ours = bool(stack.record.swarm and stack.record.swarm.started)
        return {self.name: Health(f"{HOST}:2377", probe.swarm == "active", ours)}


class BaseImageComponent:
    name = "base_image"

    def up(self, stack: Stack, wanted: Wanted) -> bool:
        from .base_image import image_id_of, usable_base_image

        base = usable_base_image()
        stack.record.base_image = BaseImage(base, image_id_of(base))
        return False  # made once and kept, like the data: never `up`'s to undo

    def down(self, stack: Stack) -> list[str]:
        return []

    def status(self, stack: Stack, probe: Probe) -> dict[str, Health]:
        from .base_image import LOCAL_BASE_IMAGE, image_id_of

        base = stack.record.base_image.name if stack.record.base_image else LOCAL_BASE_IMAGE
        return {self.name: Health(base, bool(probe.engine and image_id_of(base)), False)}


@dataclass(frozen=True)
class DaemonComponent:
    """Azurite or the registry: a process of ours on a port, or one that already answered."""

    name: str  # also the StackRecord field
    default_port: int
    marker: str  # how its command line is recognised, so a reused pid is never stopped

    def recorded(self, stack: Stack) -> Daemon | None:
        return getattr(stack.record, self.name)

    def up(self, stack: Stack, wanted: Wanted) -> bool:
        port_wanted = getattr(wanted, self.name)
        current = self.recorded(stack)
        if current and healthy(self.name, current.port) and self._owned_or_foreign(current):
            if port_wanted and port_wanted != current.port:
                log.warning(
                    "%s keeps running on port %d (not %d)", self.name, current.port, port_wanted
                )
            return False
        port = port_wanted or (current.port if current else None) or self.default_port
        if healthy(self.name, port):
            log.info(
                "%s already answers on %s:%d: using it (down leaves it)", self.name, HOST, port
            )
            setattr(stack.record, self.name, Daemon(port))
            return False
        if port_taken(port):
            raise ConfigError(
                f"port {port} on {HOST} is taken by something that is not {self.name}: "
                f"stop it, or pass --{self.name}-port with a free port"
            )
        setattr(stack.record, self.name, self._start(stack.state_dir, port))
        return True

    def _start(self, state_dir: Path, port: int) -> Daemon:
        data = state_dir / self.name
        if self.name == "azurite":
            log_path = state_dir / "azurite.log"
            pid = Azurite(port=port, location=data, log_path=log_path).start().pid
        else:
            pid = LocalRegistry(data, port=port).start().pid
        return Daemon(port, pid, str(data))

    def _owned_or_foreign(self, current: Daemon) -> bool:
        """A recorded one still counts when its pid is still that program, or was not ours."""
        return current.pid is None or process_is(current.pid, self.marker)

    def down(self, stack: Stack) -> list[str]:
        current = self.recorded(stack)
        setattr(stack.record, self.name, None)
        if current and current.pid and process_is(current.pid, self.marker):
            log.info("stopping %s (pid %d)", self.name, current.pid)
            stop(current.pid, self.name, timeout=15, group=True)
            return [self.name]
        return []

    def status(self, stack: Stack, probe: Probe) -> dict[str, Health]:
        current = self.recorded(stack)
        port = current.port if current else self.default_port
        address = stack.store_url if self.name == "azurite" else f"http://{HOST}:{port}"
        ours = bool(current and current.pid)
        return {self.name: Health(address, healthy(self.name, port), ours)}


class ClusterComponent:
    """The local cluster, when `local run` started it (never `up`)."""

    name = "cluster"

    def up(self, stack: Stack, wanted: Wanted) -> bool:
        return False

    def down(self, stack: Stack) -> list[str]:
        cluster, stack.record.cluster = stack.record.cluster, None
        if cluster and cluster.started:
            from .kube_cluster import down as cluster_down

            cluster_down(Path(cluster.state_dir))
            return [self.name]
        return []

    def status(self, stack: Stack, probe: Probe) -> dict[str, Health]:
        cluster = stack.record.cluster
        if not cluster:
            return {}
        from .kube_cluster import status as cluster_status

        found = cluster_status(Path(cluster.state_dir))
        return {self.name: Health(found.server or found.state_dir, found.running, cluster.started)}


class ServicesComponent:
    """What `local run` deployed (never `up`): swarm services, or port-forwards to the
    cluster's Service."""

    name = "services"

    def up(self, stack: Stack, wanted: Wanted) -> bool:
        return False

    def down(self, stack: Stack) -> list[str]:
        stopped = []
        for name, service in stack.record.services.items():
            if service.pid:  # a port-forward to the service on the local cluster
                if process_is(service.pid, "port-forward"):
                    stop(service.pid, f"the port-forward to {name}", timeout=10)
            elif docker_answers() and swarm_state() == "active":
                log.info("removing swarm service %s", name)
                docker(["service", "rm", name], timeout=60, check=False)
                wait_for(  # the task drains its requests first (stop grace period: 25 s)
                    lambda port=service.port: None if port_taken(port) else True,
                    timeout=60,
                    what=f"port {service.port} of service {name} was not freed",
                    interval=0.5,
                )
            stopped.append(f"service {name}")
        stack.record.services = {}
        return stopped

    def status(self, stack: Stack, probe: Probe) -> dict[str, Health]:
        return {
            f"service {name}": Health(service.url, healthy("service", service.port), True)
            for name, service in stack.record.services.items()
        }


COMPONENTS: tuple[Component, ...] = (
    EngineComponent(),
    SwarmComponent(),
    BaseImageComponent(),
    DaemonComponent("azurite", DEFAULT_AZURITE_PORT, "azurite"),
    DaemonComponent("registry", DEFAULT_REGISTRY_PORT, "docker-registry"),
    ClusterComponent(),
    ServicesComponent(),
)


# --- the commands -------------------------------------------------------------------------------


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
    """The work of `up`, under the lock: each component forward, the record saved after each."""
    started = []
    wanted = Wanted(azurite_port, registry_port)
    for component in COMPONENTS:
        if component.up(stack, wanted):
            started.append(component.name)
        stack.save()
    ensure_container(stack)
    return started


def ensure_container(stack: Stack) -> None:
    """The `models` container in Azurite (the first publish needs it)."""
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import BlobServiceClient

    azurite = Azurite(port=stack.azurite_port)
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    with contextlib.suppress(ResourceExistsError):
        service.create_container(MODEL_CONTAINER)


def down(state_dir: Path | None = None) -> StackStopped:
    """Stop what `up` (and `run`) started, each component backward; data folders stay."""
    stack = Stack.load(state_dir)
    with locked(stack.state_dir):
        stack = Stack.load(stack.state_dir)
        stopped = []
        for component in reversed(COMPONENTS):
            stopped += component.down(stack)
            stack.save()
    log.info("stopped: %s", ", ".join(stopped) or "nothing (local up started nothing)")
    return StackStopped(tuple(stopped), str(stack.state_dir))


def status(state_dir: Path | None = None) -> StackStatus:
    """Each component: its address, whether it answers, and whether `up` started it."""
    stack, probe = Stack.load(state_dir), Probe()
    components: dict[str, Health] = {}
    for component in COMPONENTS:
        components.update(component.status(stack, probe))
    return StackStatus(components, stack.store_url, stack.registry_host, str(stack.state_dir))


def record_service(stack: Stack, name: str, port: int, url: str, pid: int | None = None) -> None:
    """Remember a service `local run` deployed, so that `local down` removes it: a swarm
    service, or (with PID) the port-forward that serves a cluster's service on this machine."""
    stack.record.services[name] = Service(port, url, pid)
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
