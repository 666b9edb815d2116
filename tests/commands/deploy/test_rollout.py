"""A pod's state as the release reads it, from the status the kubelet and the node controller
write (shapes as `kubectl get pod -o json` shows them)."""

from __future__ import annotations

from aiship.commands.deploy.rollout import pod_state


def pod(containers_ready: bool, ready_condition: str | None, reason: str | None = None) -> dict:
    status: dict = {"phase": "Running", "containerStatuses": [{"ready": containers_ready}]}
    if ready_condition is not None:
        status["conditions"] = [{"type": "Ready", "status": ready_condition}]
        if reason:
            status["conditions"][0]["reason"] = reason
    return {"metadata": {"name": "p"}, "status": status}


def test_a_pod_is_ready_when_its_containers_and_its_ready_condition_say_so():
    assert pod_state(pod(True, "True")) == "ready"
    assert pod_state(pod(True, None)) == "ready"  # a status written before conditions existed


def test_a_pod_whose_node_stopped_reporting_is_not_ready_though_its_containers_say_ready():
    # What the node controller leaves when a kubelet dies: Ready False, containers untouched.
    assert pod_state(pod(True, "False")) == "not ready (its node stopped reporting)"
    assert pod_state(pod(True, "False", "NodeNotReady")) == "not ready (NodeNotReady)"


def test_a_pod_whose_containers_are_not_ready_is_not_ready():
    assert pod_state(pod(False, "False")) == "not ready (Running)"
