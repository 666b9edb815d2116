"""`python -m aiship local cluster up|status|down`: the local cluster's whole life on its own state
folder. The control plane listens on 127.0.0.1 only, the node only on addresses inside the
namespace it made; a pod runs on it for real; `down` leaves nothing behind, and the host's sysctls,
interfaces and routes are as they were before `up`, and while it ran."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from pathlib import Path

import psutil
import pytest
import requests
import yaml

from aiship.clients.kubectl import Kubectl
from aiship.local import kube_node
from aiship.local.kube_build import ensure_binaries
from aiship.local.kube_cluster import FAKE_NODES, kwokctl_config
from aiship.local.kube_cluster import down as cluster_down
from aiship.local.kube_node import PAUSE_IMAGE
from aiship.support.processes import gone, run
from aiship.support.waiting import wait_for
from tests.clirun import run_steps

CONTROL_PLANE = {
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok-controller",
}
# What the node may change: everything else of the host's kernel settings it must leave alone.
HOST_SYSCTLS = ("vm", "kernel/panic", "kernel/panic_on_oops", "kernel/keys", "net/ipv4/ip_forward")
HOST_SYSCTLS += ("net/ipv4/conf/all", "net/ipv4/conf/default", "net/ipv6/conf/all", "net/bridge")
VOLATILE = {"vm/stat_refresh", "vm/drop_caches", "vm/compact_memory"}  # write-only triggers


def steps(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`local cluster ARGS` on a cluster of its own, whatever KUBECONFIG the tests were given."""
    return run_steps("local", "cluster", *args, "--json", drop=("KUBECONFIG",), timeout=timeout)


def host_sysctls() -> dict[str, str]:
    found = {}
    for prefix in HOST_SYSCTLS:
        root = Path("/proc/sys") / prefix
        for path in [root] if root.is_file() else sorted(root.rglob("*")):
            name = str(path.relative_to("/proc/sys"))
            if path.is_file() and name not in VOLATILE:
                try:
                    found[name] = path.read_text()
                except OSError:  # write-only, or not readable here
                    continue
    return found


def host_network() -> tuple[str, str]:
    links = run(["ip", "-o", "link", "show"], what="ip link", timeout=10).stdout
    names = sorted(line.split(":")[1].strip().split("@")[0] for line in links.splitlines())
    routes = run(["ip", "route", "show", "table", "all"], what="ip route", timeout=10).stdout
    return "\n".join(names), routes


def listening(pid: int) -> list[tuple[str, int]]:
    """What the process listens on."""
    return sorted(
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process(pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    )


def namespace_listeners(pid: int) -> set[str]:
    """The addresses every TCP listener in PID's network namespace is bound to."""
    found = set()
    for table in ("tcp", "tcp6"):
        for row in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            if state == "0A":  # LISTEN
                address = bytes.fromhex(local.split(":")[0])
                words = [address[i : i + 4][::-1] for i in range(0, len(address), 4)]
                found.add(str(ipaddress.ip_address(b"".join(words))))
    return found


@pytest.fixture
def state_dir(tmp_path):
    folder = tmp_path / "cluster"
    yield folder
    cluster_down(folder)  # a no-op when the test brought it down itself


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_up_runs_a_real_pod_and_down_leaves_nothing_behind(state_dir, tmp_path):
    sysctls, network = host_sysctls(), host_network()
    kubeconfig = tmp_path / "kubeconfig"
    scope = ("--state-dir", str(state_dir), "--kubeconfig", str(kubeconfig))
    done = steps("up", *scope, "--registry-port", "5999")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["running"] is True, result
    node = json.loads((state_dir / "node" / "node.json").read_text())
    assert set(result["components"]) == CONTROL_PLANE | {
        "containerd",
        "holder",
        "kubelet",
        f"forward-{result['server'].rsplit(':', 1)[1]}",
        "forward-5999",
    }
    assert yaml.safe_load(kubeconfig.read_text())["current-context"] == "kwok-aiship"

    # The control plane on loopback; in the node's netns, only its loopback and veth address.
    for name in CONTROL_PLANE:
        sockets = listening(result["components"][name])
        assert sockets and {ip for ip, _ in sockets} == {"127.0.0.1"}, (name, sockets)
    node_ns = namespace_listeners(result["components"]["kubelet"])
    assert node_ns == {"127.0.0.1", f"10.99.{node['index']}.2"}

    # A real container (the node's own pause image: nothing to pull) runs, with an address from
    # the node's pod network.
    kubectl = Kubectl(kubeconfig, "default")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe", "namespace": "default"},
        "spec": {
            "containers": [{"name": "c", "image": PAUSE_IMAGE, "imagePullPolicy": "Never"}],
            "terminationGracePeriodSeconds": 1,
        },
    }
    kubectl.run("apply", "-f", "-", stdin=json.dumps(pod))

    def running_pod() -> dict | None:
        found = kubectl.get("pod", "probe") or {}
        return found if found.get("status", {}).get("phase") == "Running" else None

    status = wait_for(running_pod, timeout=60, what="the pod did not run")["status"]
    assert status["podIP"].startswith(f"10.244.{node['index']}.")
    # The kubelet's API answers the API server (the pod's log comes through it) and no one else.
    assert kubectl.run("logs", "probe").returncode == 0
    kubelet_api = f"https://10.99.{node['index']}.2:10250/pods"
    # no certificate of ours, and the kubelet's own serving one is self-signed: not the point
    anonymous = requests.get(kubelet_api, verify=False, timeout=5)  # noqa: S501
    assert anonymous.status_code == 401
    assert host_sysctls() == sysctls  # while the node runs, too

    said = json.loads(steps("status", *scope).stdout)
    assert said["components"] == result["components"] and said["running"] is True

    done = steps("down", *scope)
    assert done.returncode == 0, done.stderr
    assert sorted(json.loads(done.stdout)["stopped"]) == sorted(result["components"])
    assert kube_node.leftovers(state_dir / "node", node) == []
    assert all(gone(pid) for pid in result["components"].values())
    assert host_sysctls() == sysctls
    assert host_network() == network
    said = json.loads(steps("status", "--state-dir", str(state_dir)).stdout)
    assert said["running"] is False and said["components"] == {}


def test_the_control_plane_binds_loopback_and_leaves_the_real_node_to_its_kubelet():
    config = kwokctl_config(ensure_binaries(), Path("/pki"))
    options = config["options"]
    assert options["bindAddress"] == "127.0.0.1"
    assert all(Path(options[key]).is_file() for key in options if key.endswith("Binary"))
    patches = {
        p["name"]: {a["key"]: a["value"] for a in p["extraArgs"]}
        for p in config["componentsPatches"]
    }
    assert patches["kwok-controller"] == {
        "manage-all-nodes": "false",
        "manage-nodes-with-annotation-selector": FAKE_NODES,
    }
    assert patches["kube-apiserver"] == {
        "kubelet-preferred-address-types": "InternalIP",
        "kubelet-client-certificate": "/pki/admin.crt",
        "kubelet-client-key": "/pki/admin.key",
    }
