"""What every benchmark shares: the sample model, servers on 127.0.0.1 and wrk runs against them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import psutil

from aiship.app.server import SHARED_MEMORY, metrics_parent
from aiship.support.ports import HOST, free_port  # noqa: F401 (the benches' one host and port picker)
from bench.repo import REPO_ROOT

WRK_SCRIPT = Path(__file__).with_name("wrk.lua")
FEATURES = 64
# The batch-1 row every benchmark sends: a vertical bar drawn by hand (the sample model reads it
# as a 4, p 0.97; what it answers does not change the timing).
ROW = [0.0] * 20 + [16.0, 16.0] + [0.0] * 6 + [16.0, 16.0] + [0.0] * 6 + [16.0, 16.0] + [0.0] * 26
PREDICT_PATH = "/predict"
INFER_PATH = "/v2/models/digits/infer"


def predict_body() -> str:
    return json.dumps({"instances": [ROW]})


def infer_body() -> str:
    tensor = {"name": "input", "shape": [1, FEATURES], "datatype": "FP32", "data": ROW}
    return json.dumps({"inputs": [tensor]})


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "aiship"


def train_model(out: Path) -> Path:
    """The sample model from model/train.py, written to OUT."""
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "model" / "train.py"), "--out", str(out)],
        check=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.DEVNULL,
        timeout=300,
    )
    return out


@dataclass(frozen=True)
class Body:
    """A request body as bytes, with the headers that say how to read it."""

    data: bytes
    headers: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, body: str | Body) -> Body:
        """BODY itself, or a text body as JSON."""
        if isinstance(body, Body):
            return body
        return cls(body.encode(), (("Content-Type", "application/json"),))


@dataclass(frozen=True)
class Answer:
    """An HTTP answer, whatever its status."""

    status: int
    headers: Message
    content: bytes


def post(url: str, body: str | Body, timeout: float = 2.0) -> Answer:
    sent = Body.of(body)
    request = urllib.request.Request(url, data=sent.data, headers=dict(sent.headers))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Answer(response.status, response.headers, response.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.headers, exc.read())


SEMAPHORES = "sem.mp-*"  # the names Python's multiprocessing gives its semaphores


@dataclass
class Server:
    """A server process group started by `serve`; `startup_s` is the time to its first 200."""

    name: str
    process: subprocess.Popen
    port: int
    startup_s: float

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"

    def processes(self) -> list[psutil.Process]:
        root = psutil.Process(self.process.pid)
        return [root, *root.children(recursive=True)]

    def workers(self) -> list[psutil.Process]:
        """The processes that answer requests: the leaves of the process tree."""
        return [p for p in self.processes() if not p.children()]

    def memory_mib(self) -> dict[str, float]:
        """RSS summed over every process (shared pages counted each time) and PSS (shared split)."""
        rss = pss = 0
        for proc in self.processes():
            info = proc.memory_full_info()
            rss, pss = rss + info.rss, pss + info.pss
        return {"rss_mib": rss / 2**20, "pss_mib": pss / 2**20}


@contextmanager
def serve(
    name: str,
    command: Sequence[str],
    port: int,
    probe_path: str,
    probe_body: str,
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> Iterator[Server]:
    """Run COMMAND in its own process group until a POST to PROBE_PATH answers 200, then stop,
    and remove the named semaphores it left."""
    semaphores = set(SHARED_MEMORY.glob(SEMAPHORES))
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_ready(process, f"http://{HOST}:{port}{probe_path}", probe_body, timeout, log)
            yield Server(name, process, port, time.perf_counter() - started)
        finally:
            _stop(process)
            # A server whose processes are stopped before Python's multiprocessing tidies up
            # leaves its semaphores in shared memory.
            for left in set(SHARED_MEMORY.glob(SEMAPHORES)) - semaphores:
                left.unlink(missing_ok=True)


def _wait_ready(process: subprocess.Popen, url: str, body: str, timeout: float, log) -> None:
    deadline = time.perf_counter() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}: {_tail(log)}")
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{url} not ready after {timeout:.0f} s: {_tail(log)}")
        try:
            if post(url, body).status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the whole process group, SIGKILL whatever is left after 20 s."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            os.killpg(process.pid, 0)  # the leader is gone: are any of its children left?
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return
        time.sleep(0.5)


def _tail(log, size: int = 2000) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-size:]


# TARGET (`module:factory`) on granian configured as the service runs it (src/aiship/app/server.py).
SHIPPED_SERVER = (
    "import sys; from aiship.app.server import granian_server; "
    "granian_server(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])).serve()"
)


@contextmanager
def shipped_server(
    name: str, target: str, workers: int, port: int, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """TARGET, a factory of a WSGI app, on the service's own server, with its own metrics folder
    (where the service puts its own, removed after) and ENV."""
    command = [sys.executable, "-c", SHIPPED_SERVER, target, HOST, str(port), str(workers)]
    with tempfile.TemporaryDirectory(prefix=f"{name}-metrics-", dir=metrics_parent()) as metrics:
        settings = {"PROMETHEUS_MULTIPROC_DIR": metrics, **(env or {})}
        with serve(name, command, port, PREDICT_PATH, predict_body(), settings) as server:
            yield server


def our_server(model_dir: Path, workers: int, port: int, env: dict[str, str] | None = None):
    """The aiship service, as production runs it (`python -m aiship.app serve`)."""
    command = [sys.executable, "-m", "aiship.app", "serve", "--model-dir", str(model_dir)]
    command += ["--port", str(port), "--workers", str(workers)]
    return serve("aiship", command, port, PREDICT_PATH, predict_body(), env)


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    errors: int  # socket errors (connect, read, write, timeout) plus HTTP errors
    non2xx: int  # only counted with check_status
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def wrk(
    url_base: str,
    requests: Sequence[tuple[str, str | Body]],
    connections: int,
    seconds: float,
    headers: Sequence[str] = (),
    check_status: bool = False,
) -> WrkResult:
    """Run wrk for SECONDS with CONNECTIONS connections, cycling through (path, body) REQUESTS,
    a text body as JSON. HEADERS ("Name: value", wrk's -H) go only with a lone request."""
    threads = min(connections, 2)
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as folder:
        command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:.0f}s"]
        command += ["--timeout", "5s", "-s", str(WRK_SCRIPT)]
        for header in headers:
            command += ["-H", header]
        env = {
            **os.environ,
            "WRK_REQUESTS": str(_request_files(Path(folder), requests)),
            "WRK_CHECK_STATUS": "01"[check_status],
        }
        done = subprocess.run(
            [*command, url_base], env=env, capture_output=True, text=True, timeout=seconds + 30
        )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr.strip() or done.stdout.strip()}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("WRK_JSON "))
    raw = json.loads(line.removeprefix("WRK_JSON "))
    errors = sum(raw[k] for k in ("connect", "read", "write", "timeout", "status"))
    return WrkResult(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        errors=errors,
        non2xx=raw["non2xx"],
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
    )


def _request_files(folder: Path, requests: Sequence[tuple[str, str | Body]]) -> Path:
    """The list wrk.lua reads: a line per request, "PATH<TAB>BODY FILE<TAB>Name: value...",
    each body in a file of its own, written as bytes."""
    lines = []
    for index, (path, body) in enumerate(requests):
        sent = Body.of(body)
        data = folder / f"{index}.body"
        data.write_bytes(sent.data)
        lines.append("\t".join([path, str(data), *(f"{k}: {v}" for k, v in sent.headers)]))
    listing = folder / "requests.tsv"
    listing.write_text("".join(f"{line}\n" for line in lines))
    return listing


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
