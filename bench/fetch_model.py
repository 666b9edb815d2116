"""Model fetch: steps' fetch-model against a raw curl GET of the same blob, from Azurite.

`python -m bench.fetch_model` publishes a 256 MiB model (random bytes with a matching model.json)
to Azurite on 127.0.0.1, then alternates, ROUNDS times: a curl GET of the blob's SAS URL, the same
followed by `sha256sum`, the same streamed through `tee` into `openssl dgst -sha256` (the
like-for-like references: fetch verifies while it downloads), and `fetch_model` into a fresh folder
per --max-concurrency value; it reports throughput, CPU seconds of the client and of
Azurite, the peak RSS above the process's baseline, and last a re-fetch of the unchanged model.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil

from aiship.app.card import file_sha256, read_card, write_card
from aiship.clients.stores import open_model_store
from aiship.commands.model_store import fetch_model, publish_model
from aiship.local.azurite import ACCOUNT, DEV_ACCOUNT_KEY, Azurite
from aiship.support.progress import Progress
from bench.repo import REPO_ROOT

CONTAINER = "models"
MIB = 1 << 20


class PeakRss:
    """Samples this process's RSS every few ms in a thread; `peak` is the highest seen."""

    def __init__(self, interval: float = 0.005) -> None:
        self._process = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.peak = max(self.peak, self._process.memory_info().rss)


def make_model(out: Path, size: int) -> Path:
    """model.onnx of random bytes with the sample model's card, its sha256 set to match."""
    sys.path.insert(0, str(REPO_ROOT / "model"))
    import train

    train.write_model(out, name="digits", version="1.0.0")
    with open(out / "model.onnx", "wb") as f:
        for _ in range(size // (4 * MIB)):
            f.write(os.urandom(4 * MIB))
    card = dataclasses.replace(read_card(out), sha256=file_sha256(out / "model.onnx"))
    write_card(out, card)
    return out


def read_only_sas() -> str:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    return generate_container_sas(
        ACCOUNT,
        CONTAINER,
        account_key=DEV_ACCOUNT_KEY,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=datetime.now(UTC) + timedelta(hours=2),
    )


@dataclass(frozen=True)
class Sample:
    seconds: float
    client_cpu: float  # user + system seconds of the downloading process
    server_cpu: float  # user + system seconds of Azurite meanwhile
    rss: int = 0  # peak RSS above the baseline (fetch only)
    moved: int = 0  # bytes downloaded (fetch only)


def cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# How the raw GET is made: curl alone, then two ways a shell verifies what it downloaded.
CURL = 'curl -sS -f -o "$OUT" "$URL"'
CURL_THEN_SHA256SUM = f'{CURL} && sha256sum "$OUT"'
CURL_TEE_OPENSSL = 'set -o pipefail; curl -sS -f "$URL" | tee "$OUT" | openssl dgst -sha256'


def curl_once(url: str, out: Path, server: psutil.Process, script: str = CURL) -> Sample:
    """One raw GET of the blob into a file, made by the bash SCRIPT."""
    client, served, started = children_cpu(), cpu(server), time.perf_counter()
    env = {**os.environ, "URL": url, "OUT": str(out)}
    subprocess.run(["bash", "-c", script], env=env, check=True, capture_output=True, timeout=600)
    seconds = time.perf_counter() - started
    out.unlink()
    return Sample(seconds, children_cpu() - client, cpu(server) - served)


def fetch_once(store_url: str, dest: Path, concurrency: int, server: psutil.Process) -> Sample:
    """One in-process fetch into DEST."""
    store = open_model_store(store_url, max_concurrency=concurrency)
    me = psutil.Process()
    baseline, client, served = me.memory_info().rss, cpu(me), cpu(server)
    with PeakRss() as rss:
        started = time.perf_counter()
        result = fetch_model(
            store, "digits", dest, progress=lambda label: Progress(label, tty=False)
        )
        seconds = time.perf_counter() - started
    return Sample(
        seconds,
        cpu(me) - client,
        cpu(server) - served,
        rss.peak - baseline,
        result.downloaded_bytes,
    )


def run(size_mib: int, rounds: int, concurrencies: list[int]) -> str:
    work = Path(tempfile.mkdtemp(prefix="bench-fetch-"))
    try:
        model_dir = make_model(work / "model", size_mib * MIB)
        size = (model_dir / "model.onnx").stat().st_size
        with Azurite(location=work / "azurite", log_path=work / "azurite.log") as azurite:
            from azure.storage.blob import BlobServiceClient

            BlobServiceClient.from_connection_string(azurite.connection_string).create_container(
                CONTAINER
            )
            sas = read_only_sas()
            store_url = f"{azurite.account_url}/{CONTAINER}?{sas}"
            os.environ["AZURE_STORAGE_CONNECTION_STRING"] = azurite.connection_string
            started = time.perf_counter()
            publish_model(open_model_store(f"{azurite.account_url}/{CONTAINER}"), model_dir)
            publish_seconds = time.perf_counter() - started
            blob_url = f"{azurite.account_url}/{CONTAINER}/digits/1.0.0/model.onnx?{sas}"

            server = psutil.Process(azurite.pid)
            samples: dict[str, list[Sample]] = {"curl": []}
            for _ in range(rounds):
                samples["curl"].append(curl_once(blob_url, work / "curl.out", server))
                for name, script in (
                    ("curl GET, then sha256sum", CURL_THEN_SHA256SUM),
                    ("curl GET streamed through tee into openssl sha256", CURL_TEE_OPENSSL),
                ):
                    sample = curl_once(blob_url, work / "curl.out", server, script)
                    samples.setdefault(name, []).append(sample)
                for concurrency in concurrencies:
                    dest = work / f"dest-{concurrency}"
                    sample = fetch_once(store_url, dest, concurrency, server)
                    assert sample.moved == size, (sample.moved, size)
                    name = f"fetch-model, max_concurrency={concurrency}"
                    samples.setdefault(name, []).append(sample)
                    refetch = fetch_once(store_url, dest, concurrency, server)
                    shutil.rmtree(dest)
            return report(size, publish_seconds, samples, refetch)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(size: int, publish_seconds: float, samples: dict, refetch: Sample) -> str:
    mib = size / MIB
    raw = statistics.median(s.seconds for s in samples["curl"])
    lines = [
        f"Model {mib:.0f} MiB, {len(samples['curl'])} rounds, medians (min-max); CPU seconds are "
        f"the downloader's and Azurite's. Publish (upload) took {publish_seconds:.1f} s.",
        "",
        "| transfer | seconds | MiB/s | ratio to curl | client CPU s | Azurite CPU s "
        "| peak RSS above baseline |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, runs in samples.items():
        seconds = [s.seconds for s in runs]
        median = statistics.median(seconds)
        peak = f"{max(s.rss for s in runs) / MIB:.0f} MiB" if name.startswith("fetch") else "-"
        lines.append(
            f"| {'curl GET of the SAS URL' if name == 'curl' else name} | {median:.2f} "
            f"({min(seconds):.2f}-{max(seconds):.2f}) | {mib / median:.0f} | {raw / median:.2f} "
            f"| {statistics.median(s.client_cpu for s in runs):.2f} "
            f"| {statistics.median(s.server_cpu for s in runs):.2f} "
            f"| {peak} |"
        )
    lines += [
        "",
        f"Re-fetch of the unchanged model: {refetch.seconds:.2f} s, {refetch.moved} bytes "
        f"downloaded, peak RSS +{refetch.rss / MIB:.0f} MiB.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fetch_model", description=__doc__)
    parser.add_argument("--size-mib", type=int, default=256, help="model size (default 256)")
    parser.add_argument("--rounds", type=int, default=3, help="curl/fetch rounds (default 3)")
    parser.add_argument(
        "--max-concurrency", type=int, nargs="+", default=[8], help="values to fetch with"
    )
    args = parser.parse_args(argv)
    print(run(args.size_mib, args.rounds, args.max_concurrency), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
