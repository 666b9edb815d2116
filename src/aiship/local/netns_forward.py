"""Forward TCP from inside a network namespace to the same kind of address on the host.

    python -m aiship.local.netns_forward --netns /run/netns/NAME 127.0.0.1:5000=127.0.0.1:5000

Each LISTEN=DIAL pair listens on LISTEN inside the namespace and pipes each connection to DIAL,
dialled from the host's namespace. The local node uses it so that its containerd pulls from the
host's registry, and its kubelet reaches the host's API server, at the same loopback addresses the
host uses: the image names and the kubeconfig are the same on both sides, and nothing leaves
loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import socket
from collections.abc import Sequence

log = logging.getLogger("netns-forward")

CLONE_NEWNET = 0x40000000
CHUNK = 256 * 1024


def parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host, int(port)


def parse_pair(text: str) -> tuple[tuple[str, int], tuple[str, int]]:
    listen, separator, dial = text.partition("=")
    if not separator:
        raise argparse.ArgumentTypeError(f"{text!r} is not LISTEN=DIAL (HOST:PORT=HOST:PORT)")
    return parse_address(listen), parse_address(dial)


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def listen_in(netns: str, address: tuple[str, int]) -> socket.socket:
    """A listening socket made inside `netns`; the process is back in its own namespace after."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(netns, os.O_RDONLY)
    try:
        _setns(target)
        try:
            return socket.create_server(address, reuse_port=False)
        finally:
            _setns(own)
    finally:
        os.close(target)
        os.close(own)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


def _handler(dial: tuple[str, int]):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*dial)
        except OSError as exc:
            log.warning("dial %s:%d: %s", *dial, exc)
            writer.close()
            return
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        upstream_writer.close()
        writer.close()

    return handle


async def serve(netns: str, pairs: Sequence[tuple[tuple[str, int], tuple[str, int]]]) -> None:
    servers = []
    for listen, dial in pairs:
        servers.append(await asyncio.start_server(_handler(dial), sock=listen_in(netns, listen)))
        log.info("forwarding %s:%d (in %s) to %s:%d", *listen, netns, *dial)
    await asyncio.gather(*(server.serve_forever() for server in servers))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m aiship.local.netns_forward")
    parser.add_argument("--netns", required=True, help="the namespace's file, /run/netns/NAME")
    parser.add_argument("pairs", nargs="+", type=parse_pair, metavar="LISTEN=DIAL")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.netns, args.pairs))


if __name__ == "__main__":
    main()
