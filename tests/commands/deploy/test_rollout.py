"""A pod's state as the release reads it, from the status the kubelet and the node controller
write (shapes as `kubectl get pod -o json` shows them)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from aiship.commands.deploy.rollout import pod_state, stuck_reason


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


def ago(seconds: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def unschedulable(message: str, seconds: float) -> dict:
    """A Pending pod as the scheduler leaves it."""
    condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
    condition |= {"message": message, "lastTransitionTime": ago(seconds)}
    return {"metadata": {"name": "p"}, "status": {"phase": "Pending", "conditions": [condition]}}


def on_a_gone_node(seconds: float) -> dict:
    gone = pod(True, "False")
    gone["status"]["conditions"][0]["lastTransitionTime"] = ago(seconds)
    return gone


NOT_READY = (
    "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }."
)
FULL = "0/1 nodes are available: 1 Insufficient cpu."


def test_a_pod_with_no_working_node_is_stuck_once_the_patience_is_spent():
    assert stuck_reason(unschedulable(NOT_READY, 5), node_patience=60) is None
    # The seconds waited are the cluster's timestamps' (whole seconds) against the clock.
    stuck = stuck_reason(unschedulable(NOT_READY, 61), node_patience=60)
    assert re.fullmatch(r"pod p has no ready node to run on for 6[12] s", stuck or "")
    stuck = stuck_reason(on_a_gone_node(90), node_patience=60)
    assert re.fullmatch(r"pod p is on a node that stopped reporting for 9[01] s", stuck or "")
    # Without a patience (a rolling update), only the rollout's own time limit judges it.
    assert stuck_reason(unschedulable(NOT_READY, 600)) is None


def test_a_pod_waiting_for_resources_is_left_to_the_rollout_time_limit():
    # A cluster autoscaler may be adding the node it waits for.
    assert stuck_reason(unschedulable(FULL, 600), node_patience=60) is None
