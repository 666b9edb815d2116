"""The node's network: its netns, the veth pair to the host, the pod bridge inside the netns,
and the host's route to the pod network; the lock under which a node picks its N."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from ...support.errors import StepError, Unavailable
from ...support.processes import last_line, run
from .layout import NodeLayout

NODE_INTERFACE, BRIDGE = "node0", "cni0"  # inside the node's netns: no clash with the host's
NETWORK_LOCK = "/run/lock/aiship-node-network.lock"  # held while a node picks and makes its network


@contextlib.contextmanager
def _network_lock() -> Iterator[None]:
    Path(NETWORK_LOCK).parent.mkdir(parents=True, exist_ok=True)
    with open(NETWORK_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def free_index() -> int:
    """The first N whose 10.99.N.0/30 and 10.244.N.0/24 no interface or route of the host uses."""
    taken = run(["ip", "-o", "-4", "addr", "show"], what="ip addr", timeout=10).stdout
    taken += run(["ip", "-4", "route", "show", "table", "all"], what="ip route", timeout=10).stdout
    for index in range(1, 255):
        if f"10.99.{index}." not in taken and f"10.244.{index}." not in taken:
            return index
    raise Unavailable("no free 10.99.N.0/30 for a local node: stop other local nodes, then retry")


def make_network(node: NodeLayout) -> None:
    ns, host_if = node.netns, node.host_interface
    in_ns = ("ip", "-n", ns)
    commands = [
        ("ip", "netns", "add", ns),
        ("ip", "link", "add", host_if, "type", "veth", "peer", "name", NODE_INTERFACE, "netns", ns),
        ("ip", "addr", "add", f"{node.host_address}/30", "dev", host_if),
        ("ip", "link", "set", host_if, "up"),
        (*in_ns, "link", "set", "lo", "up"),
        (*in_ns, "addr", "add", f"{node.node_address}/30", "dev", NODE_INTERFACE),
        (*in_ns, "link", "set", NODE_INTERFACE, "up"),
        (*in_ns, "link", "add", BRIDGE, "type", "bridge"),
        (*in_ns, "addr", "add", f"{node.pod_gateway}/24", "dev", BRIDGE),
        (*in_ns, "link", "set", BRIDGE, "up"),
        # forwarding between the node's veth and its pods, in the node's netns alone
        ("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"),
        ("ip", "route", "add", node.pod_subnet, "via", node.node_address, "dev", host_if),
    ]
    for command in commands:
        _must(command, f"`{' '.join(command[:4])}`")


def remove_network(node: NodeLayout) -> None:
    """Deleting the veth removes the route through it; deleting the netns removes the rest."""
    run(["ip", "link", "del", node.host_interface], what="ip link del", timeout=10)
    if node.netns_path.exists():
        run(["ip", "netns", "del", node.netns], what="ip netns del", timeout=10)


def _must(command: tuple[str, ...] | list[str], what: str) -> None:
    done = run(list(command), what=what, timeout=30)
    if done.returncode != 0:
        raise StepError(f"{what} failed: {last_line(done.stderr or done.stdout)}")
