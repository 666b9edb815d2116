"""A network partition between a client and one server: a TCP forwarder on 127.0.0.1 that can be
cut. While cut, it drops the connections it carries and refuses new ones, as a runner that has
lost its route to the API server sees it; restored, it forwards again. The server itself runs on
undisturbed (its controllers and the node keep their leases), so only the client is cut off."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import yaml

CHUNK = 65536


class Partition:
    """Forwards 127.0.0.1:PORT to UPSTREAM (host, port) until cut."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cut_off = threading.Event()
        self.stopped = threading.Event()
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def __enter__(self) -> Partition:
        self._start(self._accept)
        return self

    def __exit__(self, *_: object) -> None:
        self.stopped.set()
        self.listener.close()
        self._drop()
        for thread in self.threads:
            thread.join(timeout=10)

    def cut(self) -> None:
        self.cut_off.set()
        self._drop()

    def restore(self) -> None:
        self.cut_off.clear()

    def _start(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.cut_off.is_set():
                client.close()  # refused, as an unreachable server's port would be
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.open |= {client, server}
            self._start(self._pump, client, server)
            self._start(self._pump, server, client)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(CHUNK):
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def _drop(self) -> None:
        with self.lock:
            dropped, self.open = self.open, set()
        for end in dropped:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()


@contextlib.contextmanager
def partitioned_kubeconfig(kubeconfig: Path, folder: Path) -> Iterator[tuple[Path, Partition]]:
    """A copy of KUBECONFIG whose API server is reached through a Partition (same certificates:
    the server's names 127.0.0.1, which the forwarder listens on)."""
    config = yaml.safe_load(kubeconfig.read_text())
    (cluster,) = config["clusters"]
    server = urlsplit(cluster["cluster"]["server"])
    with Partition((server.hostname, server.port)) as partition:
        cluster["cluster"]["server"] = f"{server.scheme}://127.0.0.1:{partition.port}"
        path = folder / "partitioned.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        yield path, partition
