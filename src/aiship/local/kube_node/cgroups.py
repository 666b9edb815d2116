"""The node's cgroups: its own root in each hierarchy, the kubelet's cgroupRoot, under which
every pod lives."""

from __future__ import annotations

import contextlib
from pathlib import Path

from .layout import NodeLayout

CGROUPS = Path("/sys/fs/cgroup")


def cgroup_folders(node: NodeLayout) -> list[Path]:
    """The node's cgroup root in every hierarchy: the one v2 tree, or each of v1's, including a
    hybrid host's `unified` one (runc makes the pods' cgroups there too)."""
    if (CGROUPS / "cgroup.controllers").is_file():  # cgroup v2 only
        return [CGROUPS / node.cgroup_root.lstrip("/")]
    return [
        hierarchy / node.cgroup_root.lstrip("/")
        for hierarchy in sorted(CGROUPS.iterdir())
        if hierarchy.is_dir() and not hierarchy.is_symlink()
    ]


def make_cgroups(node: NodeLayout) -> None:
    for folder in cgroup_folders(node):
        folder.mkdir(exist_ok=True)
    cpuset = CGROUPS / "cpuset"
    if (cpuset / "cpuset.cpus").is_file():  # v1: a new cpuset has no cpus or memory nodes
        mine = cpuset / node.cgroup_root.lstrip("/")
        for name in ("cpuset.cpus", "cpuset.mems"):
            (mine / name).write_text((cpuset / name).read_text())


def remove_cgroups(node: NodeLayout) -> list[str]:
    """Remove the node's cgroups, deepest first; the ones still holding a process are named."""
    left = []
    for folder in cgroup_folders(node):
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if path.is_dir():
                with contextlib.suppress(OSError):
                    path.rmdir()
        with contextlib.suppress(OSError):
            folder.rmdir()
        if folder.is_dir():
            left.append(str(folder))
    return left


def cgroup_processes(node: NodeLayout) -> list[int]:
    """Every process in the node's cgroups (the pods' containers)."""
    pids: set[int] = set()
    for folder in cgroup_folders(node):
        for procs in folder.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(line) for line in procs.read_text().split())
    return sorted(pids)
