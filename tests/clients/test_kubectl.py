"""kubectl, the real binary: a call the API server does not answer is tried again for the
client's patience, and only such a call (an answer, even a refusal, is final)."""

from __future__ import annotations

import logging
import socket

from aiship.clients.kubectl import UNANSWERED, Kubectl


def kubeconfig_at(folder, port: int, context: str = "c"):
    path = folder / "kubeconfig"
    path.write_text(
        f"apiVersion: v1\nkind: Config\ncurrent-context: {context}\n"
        f"clusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{port}'}}}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {}}]\n"
    )
    return path


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the block ends: nothing listens


def retries(caplog) -> int:
    return sum("did not answer" in r.getMessage() for r in caplog.records)


def test_an_unanswered_call_is_tried_again_while_patience_lasts(tmp_path, caplog):
    config = kubeconfig_at(tmp_path, closed_port())
    with caplog.at_level(logging.WARNING):
        done = Kubectl(config, "ns", patience=2.5).run("get", "pods", check=False, timeout=30)
    assert done.returncode != 0 and UNANSWERED.search(done.stderr)
    assert retries(caplog) >= 1
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        Kubectl(config, "ns").run("get", "pods", check=False, timeout=30)
    assert retries(caplog) == 0


def test_an_answer_is_not_tried_again(tmp_path, caplog):
    config = kubeconfig_at(tmp_path, closed_port(), context="missing")
    with caplog.at_level(logging.WARNING):
        done = Kubectl(config, "ns", patience=30).run("get", "pods", check=False, timeout=30)
    assert done.returncode != 0 and "missing" in done.stderr
    assert retries(caplog) == 0
