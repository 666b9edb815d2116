"""The local stack's record (stack.json) and the order its components are walked in; the stack
itself runs in tests/system/test_local_run.py."""

from __future__ import annotations

import json

import pytest

from aiship.local.stack import (
    COMPONENTS,
    BaseImage,
    Cluster,
    Daemon,
    Engine,
    Service,
    Stack,
    StackRecord,
    Swarm,
    record_service,
)
from aiship.support.errors import ConfigError

# stack.json as `up` and `local run` wrote it before the record was typed (and still write it).
WRITTEN = {
    "engine": {"started": True, "state_dir": "/s/dockerd", "version": "26.1.5"},
    "swarm": {"started": False},
    "base_image": {"name": "local/python:3.11-slim", "id": "sha256:1"},
    "azurite": {"port": 10000, "pid": 41, "data": "/s/azurite"},
    "registry": {"port": 5000, "pid": None},
    "cluster": {"started": True, "state_dir": "/s/cluster"},
    "services": {"aiship": {"port": 8080, "url": "http://127.0.0.1:8080", "pid": 77}},
}


def test_the_record_reads_stack_json_as_written_and_writes_it_back(tmp_path):
    (tmp_path / "stack.json").write_text(json.dumps(WRITTEN))

    stack = Stack.load(tmp_path)
    assert stack.record == StackRecord(
        engine=Engine(True, "/s/dockerd", "26.1.5"),
        swarm=Swarm(False),
        base_image=BaseImage("local/python:3.11-slim", "sha256:1"),
        azurite=Daemon(10000, 41, "/s/azurite"),
        registry=Daemon(5000),
        cluster=Cluster(True, "/s/cluster"),
        services={"aiship": Service(8080, "http://127.0.0.1:8080", 77)},
    )
    stack.save()
    assert Stack.load(tmp_path).record == stack.record
    written = json.loads((tmp_path / "stack.json").read_text())
    assert written == {**WRITTEN, "registry": {"port": 5000, "pid": None, "data": None}}


def test_an_empty_stack_has_the_usual_ports_and_writes_nothing_it_lacks(tmp_path):
    stack = Stack.load(tmp_path)

    assert (stack.azurite_port, stack.registry_port) == (10000, 5000)
    record_service(stack, "aiship-swarm", 8081, "http://127.0.0.1:8081")
    assert json.loads((tmp_path / "stack.json").read_text()) == {
        "services": {"aiship-swarm": {"port": 8081, "url": "http://127.0.0.1:8081", "pid": None}}
    }


@pytest.mark.parametrize("text", ["{not json", '{"engine": 3}', '{"azurite": {"pid": 1}}'])
def test_a_record_that_is_not_one_stops_with_what_to_do(tmp_path, text):
    (tmp_path / "stack.json").write_text(text)

    with pytest.raises(ConfigError, match="is not a stack record: remove it and run local up"):
        Stack.load(tmp_path)


def test_up_starts_in_dependency_order_and_down_stops_in_reverse():
    """The engine before the swarm it hosts, the stand-ins before what `local run` adds."""
    names = [component.name for component in COMPONENTS]

    assert names == [
        "engine", "swarm", "base_image", "azurite", "registry", "cluster", "services"
    ]  # fmt: skip
