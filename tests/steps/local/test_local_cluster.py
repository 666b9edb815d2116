"""`python -m steps local cluster up|status|down`: the local control plane's whole life, on its own
state folder, whatever KUBECONFIG says. Every socket it listens on is on 127.0.0.1, and `down` stops
every process and frees every port."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import psutil
import pytest
import yaml

from steps.local.kube_cluster import NEVER_READY, kwokctl_config, stages
from steps.local.kube_cluster import down as cluster_down
from tests.stepscli import run_steps

COMPONENTS = {
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok-controller",
}


def steps(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`local cluster ARGS` on a cluster of its own, whatever KUBECONFIG the tests were given."""
    return run_steps("local", "cluster", *args, "--json", drop=("KUBECONFIG",), timeout=timeout)


def listening(pid: int) -> list[tuple[str, int]]:
    return sorted(
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process(pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    )


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def state_dir(tmp_path):
    folder = tmp_path / "cluster"
    yield folder
    cluster_down(folder)  # a no-op when the test brought it down itself


def test_up_status_down_on_loopback_only(state_dir, tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    done = steps("up", "--state-dir", str(state_dir), "--kubeconfig", str(kubeconfig))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["running"] is True, result
    assert set(result["components"]) == COMPONENTS
    assert result["server"].startswith("https://127.0.0.1:")
    assert yaml.safe_load(kubeconfig.read_text())["current-context"] == "kwok-aiship"

    sockets = {name: listening(pid) for name, pid in result["components"].items()}
    assert all(sockets.values()), sockets  # each component serves something
    addresses = {ip for found in sockets.values() for ip, _ in found}
    assert addresses == {"127.0.0.1"}, sockets
    ports = [port for found in sockets.values() for _, port in found]

    status = json.loads(
        steps("status", "--state-dir", str(state_dir), "--kubeconfig", str(kubeconfig)).stdout
    )
    assert status["components"] == result["components"]
    assert status["running"] is True

    done = steps("down", "--state-dir", str(state_dir), "--kubeconfig", str(kubeconfig))
    assert done.returncode == 0, done.stderr
    assert sorted(json.loads(done.stdout)["stopped"]) == sorted(COMPONENTS)
    assert not any(alive(pid) for pid in result["components"].values())
    assert not any(answers(port) for port in ports)
    status = json.loads(steps("status", "--state-dir", str(state_dir)).stdout)
    assert status["running"] is False
    assert status["components"] == {}


def test_stages_keep_never_ready_pods_out_of_pod_ready(tmp_path):
    from steps.local.kube_build import ensure_binaries

    found = {s["metadata"]["name"]: s for s in stages(ensure_binaries().stages_dir)}
    assert {"node-initialize", "pod-ready", "pod-delete", "pod-never-ready"} <= set(found)
    ready = found["pod-ready"]["spec"]["selector"]["matchExpressions"]
    never = found["pod-never-ready"]["spec"]["selector"]["matchExpressions"]
    assert {"cel": {"expression": f"!({NEVER_READY})"}} in ready
    assert {"cel": {"expression": NEVER_READY}} in never
    options = kwokctl_config(ensure_binaries())[0]["options"]
    assert options["bindAddress"] == "127.0.0.1"
    assert all(Path(options[key]).is_file() for key in options if key.endswith("Binary"))
