"""The container-start floor: `docker run` of the same image until it is ready."""

from __future__ import annotations

import time

import psutil

from aiship.clients.docker import docker
from aiship.support.ports import HOST, free_port

from .measure import Figures, rss_pss, wait_http


def docker_run_ready(image: str, figures: Figures, measure_memory: bool = False) -> None:
    """`docker run` of IMAGE (host network, 127.0.0.1, a free port, two workers as the pods) until
    /v2/health/ready answers; with MEASURE_MEMORY, the container's and its shim's RSS."""
    port = free_port()
    name = f"aiship-bench-floor-{port}"
    started = time.perf_counter()
    try:
        docker(
            [
                "run",
                "-d",
                "--name",
                name,
                "--network",
                "host",
                "-e",
                f"HOST={HOST}",
                "-e",
                f"PORT={port}",
                "-e",
                "WORKERS=2",
                image,
            ],
            timeout=60,
        )
        if not wait_http(f"http://{HOST}:{port}/v2/health/ready", 120):
            figures.notes.append(f"docker run of {image} was not ready within 120 s")
            return
        figures.add("docker run until ready (floor)", time.perf_counter() - started)
        if measure_memory:
            time.sleep(5)  # as long as the pods have been up, at least: past the warm-up
            pid = int(docker(["inspect", "--format", "{{.State.Pid}}", name]).strip())
            root = psutil.Process(pid)
            app = [pid, *(c.pid for c in root.children(recursive=True))]
            shim = root.parent()
            figures.memory.append(("docker run: the app container", len(app), *rss_pss(app)))
            figures.memory.append(("docker run: its containerd shim", 1, *rss_pss([shim.pid])))
    finally:
        docker(["rm", "-f", name], check=False, timeout=60)
