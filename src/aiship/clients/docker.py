"""The docker command line, run as a process with a time limit and one-line errors, and logged in
to a registry without leaving a trace (a private DOCKER_CONFIG, logged out afterwards)."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..support.errors import AuthError, ConfigError, NotFound, StepError, Unavailable
from ..support.processes import last_line, run
from ..support.waiting import wait_for
from .registry import (
    RegistryLogin,
    denied,
    firewall_error,
    firewalled,
    refused,
    registry_of,
)

UNREACHABLE = ("connection refused", "no such host", "i/o timeout", "connection reset", "dial tcp")
REFUSED = ("unauthorized", "authentication required", "no basic auth credentials")
DENIED = ("denied", "insufficient_scope")
# The legacy builder's progress: "Step 2/9 : FROM ..."; BuildKit names the image it could not
# resolve ("failed to resolve source metadata for REF: ...").
BUILD_STEP = re.compile(r"^Step \d+/\d+ : (\w+)", re.MULTILINE)
GATEWAY_BRIDGE = "docker_gwbridge"  # the network `swarm init` makes and `swarm leave` leaves

log = logging.getLogger(__name__)


def docker_path() -> str:
    path = shutil.which("docker")
    if path is None:
        raise ConfigError("the docker command is not on PATH: install docker.io (./dev setup)")
    return path


def docker(args: Sequence[str], *, timeout: float = 60, check: bool = True) -> str:
    """Run `docker ARGS`, return its stdout; a failure names the command and docker's last line."""
    command = [docker_path(), *args]
    name = " ".join(["docker", *subcommand(args)])
    done = run(
        command,
        what=f"`{name}`",
        timeout=timeout,
        hint="check that the Docker engine is responsive (docker info)",
    )
    if check and done.returncode != 0:
        reason = docker_says(done.stderr or done.stdout)
        raise StepError(f"`{name}` failed (exit {done.returncode}): {reason}")
    return done.stdout


# The line docker's CLI ends a refused command with: no reason in it, the reason is above.
HELP_HINT = re.compile(r"^Run '[^']*--help' for more information\.?$")


def docker_says(text: str) -> str:
    """docker's own reason for a failure: its last line, less the --help hint it ends with."""
    return last_line("\n".join(line for line in text.splitlines() if not HELP_HINT.match(line)))


def ensure_swarm() -> None:
    """Make this engine a one-node swarm on 127.0.0.1 unless it is one already."""
    state = docker(["info", "--format", "{{.Swarm.LocalNodeState}}"], timeout=30).strip()
    if state == "active":
        return
    log.info("making this Docker engine a one-node swarm (127.0.0.1)")
    docker(
        ["swarm", "init", "--advertise-addr", "127.0.0.1", "--listen-addr", "127.0.0.1:2377"],
        timeout=60,
    )


def leave_swarm() -> None:
    """Leave the swarm and remove the bridge it made for its gateway (docker_gwbridge), so that no
    interface of the swarm stays behind. The removal fails while the swarm's ingress still holds
    the bridge, a moment after the leave, so it is tried again until the network is gone."""
    docker(["swarm", "leave", "--force"], timeout=60, check=False)
    try:
        wait_for(_gateway_bridge_removed, timeout=30, what="removing docker_gwbridge", interval=0.5)
    except Unavailable as exc:
        log.warning("%s failed: remove it with `docker network rm %s`", exc, GATEWAY_BRIDGE)


def _gateway_bridge_removed() -> bool | None:
    docker(["network", "rm", GATEWAY_BRIDGE], timeout=30, check=False)
    names = docker(["network", "ls", "--format", "{{.Name}}"], timeout=30).split()
    return None if GATEWAY_BRIDGE in names else True


def subcommand(args: Sequence[str]) -> list[str]:
    """The words that name what docker was asked to do: `build`, `image inspect`, ... (after the
    global `--config DIR`, if any)."""
    if list(args[:1]) == ["--config"]:
        args = args[2:]
    words = []
    for arg in args[:2]:
        if not re.fullmatch(r"[a-z]+", arg):
            break
        words.append(arg)
    return words


@contextlib.contextmanager
def docker_config(login: RegistryLogin, timeout: float = 120) -> Iterator[Path]:
    """A private DOCKER_CONFIG dir, logged in to `login`; logged out and removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="aiship-docker-") as folder:
        config = Path(folder)
        credentials = login.credentials
        if credentials is None:
            yield config
            return
        try:
            run_docker(
                [
                    *("--config", folder, "login", "--username", credentials.username),
                    *("--password-stdin", login.host),
                ],
                login,
                "log in to",
                stdin=credentials.password,
                timeout=timeout,
            )
            yield config
        finally:
            # A credential helper found on PATH may hold the login outside FOLDER: ask docker.
            run_docker(
                ["--config", folder, "logout", login.host],
                login,
                "log out of",
                timeout=30,
                check=False,
            )


def run_docker(
    args: list[str],
    login: RegistryLogin,
    action: str,
    *,
    stdin: str | None = None,
    timeout: float = 120,
    check: bool = True,
) -> str:
    """Run docker with the output captured; a failure becomes a one-line, classified error."""
    done = run(
        [docker_path(), *args],
        what=f"docker {action} of {login.host}",
        timeout=timeout,
        stdin=stdin,
        hint="check the registry",
    )
    if check and done.returncode != 0:
        raise docker_error(done.stderr + done.stdout, login, action)
    return done.stdout


@dataclass(frozen=True)
class BaseImage:
    """The base image a build ran on, as the engine holds it."""

    name: str  # as given, e.g. python:3.11-slim
    digest: str  # its manifest digest in the registry it came from, else the local image id
    layers: tuple[str, ...]  # its rootfs diff_ids: the first layers of whatever is built on it


def build(
    args: Sequence[str], *, base_image: str, login: RegistryLogin | None, timeout: float
) -> tuple[str, BaseImage]:
    """`docker build ARGS` on BASE_IMAGE, given to the Dockerfile as the build args BASE_IMAGE
    and BASE_DIGEST: pulled first if the engine lacks it, logged in to its registry when LOGIN
    is given (a private DOCKER_CONFIG, as for a push; else docker's own configuration); a base
    image that cannot be pulled is named, with what to do."""
    with contextlib.ExitStack() as stack:
        config = ["--config", str(stack.enter_context(docker_config(login)))] if login else []
        base = _base_image(base_image, config, login, timeout)
        pinned = [
            "--build-arg",
            f"BASE_IMAGE={base_image}",
            "--build-arg",
            f"BASE_DIGEST={base.digest}",
        ]
        done = run(
            [docker_path(), *config, "build", *pinned, *args],
            what="`docker build`",
            timeout=timeout,
            hint="check that the Docker engine is responsive (docker info)",
        )
    if done.returncode != 0:
        output = done.stdout + done.stderr
        raise base_image_error(output, base_image, login) or StepError(
            f"`docker build` failed (exit {done.returncode}): {docker_says(done.stderr or output)}"
        )
    return done.stdout, base


def _base_image(
    name: str, config: list[str], login: RegistryLogin | None, timeout: float
) -> BaseImage:
    """NAME as the engine holds it, pulled first when it does not."""
    found = _inspect(name)
    if found is None:
        done = run(
            [docker_path(), *config, "pull", "--quiet", name],
            what=f"docker pull of {name}",
            timeout=timeout,
            hint="check the registry",
        )
        found = _inspect(name) if done.returncode == 0 else None
        if found is None:
            output = done.stdout + done.stderr
            raise base_image_error(output, name, login, pulling=True) or StepError(
                f"cannot pull the base image {name}: {docker_says(output)}"
            )
    repository = _repository(name.partition("@")[0])
    digests = [d.partition("@")[2] for d in found.get("RepoDigests") or []]
    matching = [
        d.partition("@")[2]
        for d in found.get("RepoDigests") or []
        if _repository(d.partition("@")[0]) == repository
    ]
    digest = name.partition("@")[2] or next(iter(matching or digests[:1]), "") or found["Id"]
    return BaseImage(name, digest, tuple((found.get("RootFS") or {}).get("Layers") or ()))


def _inspect(image: str) -> dict | None:
    done = run(
        [docker_path(), "image", "inspect", image],
        what=f"docker image inspect of {image}",
        timeout=60,
        hint="check that the Docker engine is responsive (docker info)",
    )
    if done.returncode != 0:
        return None
    found = json.loads(done.stdout)
    return found[0] if found else None


def image_layers(image: str) -> tuple[str, ...]:
    """IMAGE's rootfs diff_ids, as the engine holds it."""
    found = json.loads(docker(["image", "inspect", image], timeout=60))
    return tuple((found[0].get("RootFS") or {}).get("Layers") or ())


def _repository(name: str) -> str:
    """NAME without its tag, as Docker Hub's short names and RepoDigests spell it."""
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name.rsplit(":", 1)[0]
    return name.removeprefix("docker.io/").removeprefix("library/")


def base_image_error(
    output: str, base_image: str, login: RegistryLogin | None, *, pulling: bool = False
) -> StepError | None:
    """A failure to pull BASE_IMAGE (`docker pull`'s when PULLING, else `docker build`'s) as the
    step error that says what to do; None when the build failed after its FROM."""
    line = docker_says(output)
    host = registry_of(base_image)
    steps = BUILD_STEP.findall(output)
    if not (pulling or (steps and steps[-1].upper() == "FROM") or host in line):
        return None
    subject = f"the base image {base_image}"
    if (login is None or login.credentials is None) and any(
        word in line.lower() for word in (*REFUSED, *DENIED)
    ):
        return AuthError(
            f"`docker build` cannot pull {subject} without a login ({line}): give --acr for "
            "an Azure Container Registry, set REGISTRY_USERNAME and REGISTRY_PASSWORD for the "
            f"registry of --image, or `docker login {host}` before the step"
        )
    error = docker_error(line, login or RegistryLogin(host), "pull from", subject=subject)
    said = str(error)
    return type(error)(
        said if base_image in said else f"`docker build` cannot pull {subject}: {said}"
    )


def docker_error(output: str, login: RegistryLogin, action: str, *, subject: str = "") -> StepError:
    """docker's failure output -> the step error that says what to do. SUBJECT: what was
    pulled (a pull), else a push of the image."""
    line = docker_says(output)
    text = output.lower()
    if any(word in text for word in UNREACHABLE):
        return Unavailable(
            f"docker could not {action} registry {login.host}: it did not answer ({line}); "
            "check that it runs and that --image names it"
        )
    if firewalled(text):
        return AuthError(firewall_error(login.host, line))
    if "does not exist locally" in text or "no such image" in text:
        return NotFound(f"no local image to push: {line}; build it first (build-image)")
    if any(word in text for word in DENIED) and login.credentials:
        return denied(login, "pull" if subject else "push", subject or "the image")
    if any(word in text for word in REFUSED + DENIED):
        return refused(login)
    return StepError(f"docker could not {action} {login.host}: {line}")
