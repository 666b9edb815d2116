"""The registry flags every image step shares, and `docker` logged in without leaving a trace.

`--acr NAME [--resource-group RG] [--subscription S]` resolves an Azure Container Registry and logs
in through Entra ID; without it, REGISTRY_USERNAME/REGISTRY_PASSWORD, or anonymous.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from . import azure
from .dockercli import docker_path
from .errors import NotFound, StepError, Unavailable
from .processes import last_line, run
from .registry import (
    ENV_PASSWORD,
    ENV_USERNAME,
    ImageRef,
    RegistryLogin,
    credentials_from_env,
    denied,
    refused,
)

UNREACHABLE = ("connection refused", "no such host", "i/o timeout", "connection reset", "dial tcp")
REFUSED = ("unauthorized", "authentication required", "no basic auth credentials")
DENIED = ("denied", "insufficient_scope")


ENVIRONMENT = (
    "registry login: with --acr, Entra ID (DefaultAzureCredential: workload identity, managed "
    "identity or az login; AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_MANAGER_URL for other clouds); "
    f"else {ENV_USERNAME} and {ENV_PASSWORD} (masked in CI), else anonymous. Registries on "
    "127.0.0.1/localhost are spoken to over http, all others over https."
)


def add_registry_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.epilog = ENVIRONMENT
    parser.add_argument("--acr", metavar="NAME", help="an Azure Container Registry, by name")
    parser.add_argument("--resource-group", help="the ACR's resource group (else: searched)")
    parser.add_argument("--subscription", help="the ACR's subscription [AZURE_SUBSCRIPTION_ID]")
    return parser


def registry_login(args: argparse.Namespace) -> tuple[RegistryLogin, ImageRef]:
    """The login and the full image name, from --image and --acr or the environment."""
    if getattr(args, "acr", None):
        from .acr import acr_login, resolve_acr

        credential = azure.credential()
        acr = resolve_acr(
            args.acr,
            subscription=azure.subscription_id(args.subscription),
            resource_group=args.resource_group,
            token_credential=credential,
        )
        image = ImageRef.parse(args.image, default_registry=acr.login_server)
        return acr_login(acr, token_credential=credential), image
    image = ImageRef.parse(args.image)
    return RegistryLogin(image.registry, credentials_from_env()), image


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


def docker_error(output: str, login: RegistryLogin, action: str) -> StepError:
    """docker's failure output -> the step error that says what to do."""
    line = last_line(output)
    text = output.lower()
    if any(word in text for word in UNREACHABLE):
        return Unavailable(
            f"docker could not {action} registry {login.host}: it did not answer ({line}); "
            "check that it runs and that --image names it"
        )
    if "does not exist locally" in text or "no such image" in text:
        return NotFound(f"no local image to push: {line}; build it first (build-image)")
    if any(word in text for word in DENIED) and login.credentials:
        return denied(login, "push", "the image")
    if any(word in text for word in REFUSED + DENIED):
        return refused(login)
    return StepError(f"docker could not {action} {login.host}: {line}")
