"""The node's layout: where it keeps its state, the names and addresses it uses, and the paths
in its own /run."""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

NODE_NAME = "aiship-node"
# In the node's own /run (a tmpfs of its mount namespace): short paths, as a unix socket's must be
# (108 bytes), and gone with the namespace.
CONTAINERD_SOCKET = "/run/containerd/containerd.sock"
CONTAINERD_STATE = "/run/containerd/state"
KUBELET_ROOT = "/run/kubelet"  # pod volumes and the kubelet's plugin sockets


@dataclass(frozen=True)
class NodeLayout:
    """Where one node keeps its state, and the names and addresses it uses."""

    state_dir: Path
    index: int  # N in 10.99.N.0/30 and 10.244.N.0/24

    @property
    def tag(self) -> str:
        return hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:6]

    @property
    def netns(self) -> str:
        return f"aiship-{self.tag}"

    @property
    def netns_path(self) -> Path:
        return Path("/run/netns") / self.netns

    @property
    def host_interface(self) -> str:
        return f"aiship-{self.tag}"  # 13 characters: interface names have 15 at most

    @property
    def cgroup_root(self) -> str:
        return f"/aiship-{self.tag}"

    @property
    def host_address(self) -> str:
        return f"10.99.{self.index}.1"

    @property
    def node_address(self) -> str:
        return f"10.99.{self.index}.2"

    @property
    def pod_subnet(self) -> str:
        return f"10.244.{self.index}.0/24"

    @property
    def pod_gateway(self) -> str:
        return f"10.244.{self.index}.1"

    def path(self, *parts: str) -> Path:
        return self.state_dir.joinpath(*parts)

    def pid_file(self, name: str) -> Path:
        return self.path("run", f"{name}.pid")

    def log_file(self, name: str) -> Path:
        return self.path("logs", f"{name}.log")

    @classmethod
    def load(cls, state_dir: Path) -> NodeLayout | None:
        with contextlib.suppress(OSError, ValueError, KeyError):
            return cls(state_dir, int(json.loads((state_dir / "node.json").read_text())["index"]))
        return None

    def save(self, **extra: object) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        record = {"index": self.index, **extra}
        self.path("node.json").write_text(json.dumps(record), encoding="utf-8")

    def record(self) -> dict:
        with contextlib.suppress(OSError, ValueError):
            return json.loads(self.path("node.json").read_text())
        return {}
