"""A real `mlflow server` on 127.0.0.1 for the MLflow model store's tests: a pinned MLflow in a venv
of the tests' own (installed on first use), SQLite and a local artifact root in a temp folder,
artifacts served through the server's proxy, telemetry and background jobs off."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import requests

from aiship.support.paths import cache_dir
from aiship.support.ports import HOST, free_port
from aiship.support.processes import spawn, stop
from aiship.support.waiting import wait_for

# The MLflow the store is tested against (bench/mlflow_ref.py pins the release it benchmarks).
MLFLOW_VERSION = "3.17.2"
NO_TELEMETRY = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
# A cold machine installs MLflow first (about a minute here); the server then starts in ~5 s.
START_TIMEOUT = 120
# Without this the server starts seven huey job consumers, which nothing here needs.
NO_JOBS = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
ADMIN = ("admin", "admin-password-for-tests")


def venv() -> Path:
    """MLflow with its basic-auth app (mlflow[auth]: Flask-WTF) in a venv under the cache dir,
    installed once; our PYTHONPATH (tox puts the repo on it) kept from pip."""
    path = cache_dir() / f"mlflow-server-{MLFLOW_VERSION}"
    done = path / ".installed"
    if not done.exists():
        print(f"installing mlflow[auth] {MLFLOW_VERSION} into {path} (once)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(path)], check=True)
        pip = [str(path / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run(
            [*pip, f"mlflow[auth]=={MLFLOW_VERSION}"],
            check=True,
            env={**os.environ, "PYTHONPATH": ""},
            timeout=900,
        )
        done.touch()
    return path


@dataclass(frozen=True)
class MLflowServer:
    url: str  # http://127.0.0.1:PORT
    artifacts: Path  # the proxy's artifact root: EXPERIMENT_ID/RUN_ID/artifacts/<file>
    log: Path

    @property
    def store(self) -> str:
        """The --store URL of its model registry."""
        return "mlflow+" + self.url


@contextlib.contextmanager
def mlflow_server(
    folder: Path, *, options: tuple[str, ...] = (), env: Mapping[str, str] | None = None
) -> Iterator[MLflowServer]:
    """`mlflow server` with its database and artifacts in FOLDER, stopped (with its workers)
    when the block ends. OPTIONS and ENV are added to its command line and environment."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = MLflowServer(f"http://{HOST}:{port}", folder / "artifacts", folder / "mlflow.log")
    command = [str(venv() / "bin" / "mlflow"), "server", "--host", HOST, "--port", str(port)]
    command += ["--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}"]
    command += ["--artifacts-destination", str(server.artifacts), "--serve-artifacts"]
    command += ["--workers", "1", *options]
    process = spawn(
        command,
        log_path=server.log,
        pid_path=folder / "mlflow.pid",
        env={**os.environ, **NO_TELEMETRY, **NO_JOBS, **(env or {})},
    )
    try:
        wait_for(
            lambda: _healthy(server, process.poll()),
            timeout=START_TIMEOUT,
            what=f"mlflow server did not answer (see {server.log})",
        )
        yield server
    finally:
        stop(process.pid, "mlflow server", timeout=10, group=True)


@contextlib.contextmanager
def mlflow_auth_server(folder: Path) -> Iterator[MLflowServer]:
    """mlflow_server with MLflow's basic-auth app: user ADMIN, and READ for every other user
    unless granted more."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "basic_auth.ini"
    config.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{folder / 'auth.db'}\n"
        f"admin_username = {ADMIN[0]}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "tests-only-csrf-key",
    }
    with mlflow_server(folder, options=("--app-name", "basic-auth"), env=env) as server:
        yield server


def add_user(server: MLflowServer, username: str, password: str) -> None:
    """A user of the basic-auth app, made by ADMIN (with the default permission only)."""
    response = requests.post(
        f"{server.url}/api/2.0/mlflow/users/create",
        json={"username": username, "password": password},
        auth=ADMIN,
        timeout=10,
    )
    response.raise_for_status()


def _healthy(server: MLflowServer, exit_code: int | None) -> bool | None:
    if exit_code is not None:
        tail = server.log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"mlflow server exited with code {exit_code}: {tail}")
    try:
        return requests.get(f"{server.url}/health", timeout=2).ok or None
    except requests.ConnectionError:
        return None
