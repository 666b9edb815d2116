"""`python -m bench serving`: our service against every model server a user could pick instead
(bench/peers/, MLflow in bench/mlflow_ref.py) and the constant-answer floor, in one run.

Every server gets the same model, the same worker count and the same wrk load, and runs alone:
started, measured at every point, its memory read, stopped, then the next one. Markdown goes to
stdout, the chart to bench/results/serving.png.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Collection
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from . import harness, mlflow_ref
from .harness import INFER_PATH, PREDICT_PATH, Server, WrkResult
from .peers import (
    V2_BINARY,
    Endpoint,
    Peer,
    bentoml,
    instances_body,
    kserve,
    litserve,
    mlserver,
    v2_body,
)

CONCURRENCIES = (1, 8, 32, 128)
BATCHES = (1, 32)
PEERS = (mlflow_ref, mlserver, kserve, bentoml, litserve)
OURS = ("aiship", "floor")
CHART = Path(__file__).with_name("results") / "serving.png"
# A server's endpoints in the chart, in their order (no server has more than three).
LINES = ("-", ":", "--")
MARKERS = ("o", "s", "^")


@dataclass(frozen=True)
class Point:
    server: str
    endpoint: str
    batch: int
    connections: int
    result: WrkResult
    load: str


@dataclass(frozen=True)
class Facts:
    startup_s: float
    rss_mib: float
    processes: int


def floor_server(workers: int, port: int) -> AbstractContextManager[Server]:
    """bench/floor_app.py on the service's own server, the fastest `bench servers` measured."""
    return harness.shipped_server("floor", "bench.floor_app:create_app", workers, port)


def contenders(model_dir: Path, names: Collection[str] | None = None) -> list[Peer]:
    """Ours, the floor and the peers (those in NAMES, when given). The floor answers every body
    with the same JSON, so it has no binary endpoint."""
    endpoints = (
        Endpoint("/predict", PREDICT_PATH, instances_body),
        Endpoint("V2 infer", INFER_PATH, v2_body),
    )
    found = [
        Peer("aiship", lambda w, p: harness.our_server(model_dir, w, p), (*endpoints, V2_BINARY)),
        Peer("floor", floor_server, endpoints),
        *(module.peer(model_dir / "model.onnx") for module in PEERS),
    ]
    return [c for c in found if names is None or c.name in names]


def measure(server: Server, contender: Peer, seconds: float, warmup: float) -> list[Point]:
    """Every (endpoint, batch, concurrency) point of one server, each after a warm-up, each batch
    after the endpoint's check of its answers."""
    points = []
    for endpoint in contender.endpoints:
        for batch in BATCHES:
            if endpoint.check:
                endpoint.check(server.url(endpoint.path), batch)
            requests = [(endpoint.path, endpoint.body(batch))]
            for connections in CONCURRENCIES:
                harness.wrk(server.url(""), requests, connections, warmup, endpoint.headers)
                result = harness.wrk(
                    server.url(""), requests, connections, seconds, endpoint.headers
                )
                point = Point(
                    contender.name,
                    endpoint.label,
                    batch,
                    connections,
                    result,
                    harness.load_average(),
                )
                print(_point_line(point), file=sys.stderr, flush=True)
                points.append(point)
    return points


def run(
    workers: int = 2,
    seconds: float = 10,
    warmup: float = 2,
    names: Collection[str] | None = None,
    rounds: int = 1,
    chart: Path = CHART,
) -> str:
    """Measure every server ROUNDS times, keep each point's best round, draw CHART, return
    Markdown. Startup is the fastest round's, memory the largest."""
    load_before = harness.load_average()
    best: dict[tuple, Point] = {}
    facts: dict[str, Facts] = {}
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        model_dir = harness.train_model(Path(tmp) / "model")
        found = contenders(model_dir, names)
        for _ in range(rounds):
            for contender in found:
                with contender.start(workers, harness.free_port()) as server:
                    for p in measure(server, contender, seconds, warmup):
                        key = (p.server, p.endpoint, p.batch, p.connections)
                        if key not in best or p.result.rps > best[key].result.rps:
                            best[key] = p
                    facts[contender.name] = _merge(facts.get(contender.name), server)
    points = list(best.values())
    draw(points, chart, workers)
    header = (
        f"{workers} workers each; wrk {seconds:.0f} s per point after {warmup:.0f} s of warm-up; "
        f"best of {rounds} round(s). Load average (1, 5, 15 min) at the start: {load_before}."
    )
    tables = [points_table(points), summary(points), facts_table(facts)]
    return "\n\n".join([header, *("\n".join(t) for t in tables)]) + "\n"


def _merge(seen: Facts | None, server: Server) -> Facts:
    now = Facts(server.startup_s, server.memory_mib()["rss_mib"], len(server.processes()))
    if seen is None:
        return now
    return Facts(min(seen.startup_s, now.startup_s), max(seen.rss_mib, now.rss_mib), now.processes)


def _best(
    points: list[Point], names: Collection[str], batch: int, connections: int
) -> Point | None:
    """The point of a server in NAMES with the most requests/s at BATCH and CONNECTIONS."""
    pool = [
        p for p in points if p.server in names and (p.batch, p.connections) == (batch, connections)
    ]
    return max(pool, key=lambda p: p.result.rps, default=None)


def _peers(points: list[Point]) -> set[str]:
    return {p.server for p in points} - set(OURS)


def points_table(points: list[Point]) -> list[str]:
    lines = [
        "| server | endpoint | batch | conc. | req/s | p50 ms | p99 ms | errors | / best peer "
        "| / floor | load 1/5/15 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    peers = _peers(points)
    for p in points:
        r = p.result
        peer = _best(points, peers, p.batch, p.connections)
        floor = _best(points, ("floor",), p.batch, p.connections)
        lines.append(
            f"| {p.server} | {p.endpoint} | {p.batch} | {p.connections} | {r.rps:.0f} "
            f"| {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.errors} | {_ratio(r.rps, peer)} "
            f"| {_ratio(r.rps, floor)} | {p.load} |"
        )
    return lines


def summary(points: list[Point]) -> list[str]:
    """aiship's best endpoint against the best peer and the floor, at each batch and concurrency;
    the floor against the best peer is the most any Flask app on this server could reach."""
    lines = [
        "| batch | conc. | aiship req/s | best peer | its req/s | aiship / best peer | floor req/s "
        "| aiship / floor | floor / best peer | aiship p99 ms |",
        "| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    peers = _peers(points)
    for batch in BATCHES:
        for connections in CONCURRENCIES:
            ours = _best(points, ("aiship",), batch, connections)
            if ours is None:
                continue
            peer = _best(points, peers, batch, connections)
            floor = _best(points, ("floor",), batch, connections)
            ceiling = _ratio(floor.result.rps, peer) if floor else "-"
            lines.append(
                f"| {batch} | {connections} | {ours.result.rps:.0f} "
                f"| {f'{peer.server} {peer.endpoint}' if peer else '-'} | {_rps(peer)} "
                f"| {_ratio(ours.result.rps, peer)} | {_rps(floor)} "
                f"| {_ratio(ours.result.rps, floor)} | {ceiling} | {ours.result.p99_ms:.2f} |"
            )
    return lines


def facts_table(facts: dict[str, Facts]) -> list[str]:
    lines = [
        "| server | process start to first answer s | RSS MiB after the load, all processes "
        "| processes |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, f in facts.items():
        lines.append(f"| {name} | {f.startup_s:.2f} | {f.rss_mib:.0f} | {f.processes} |")
    return lines


def draw(points: list[Point], path: Path, workers: int) -> None:
    """Requests/s and p99 by concurrency, a line per server and endpoint, a column per batch."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(2, len(BATCHES), figsize=(13, 9), sharex=True, squeeze=False)
    styles = _styles(points)
    for column, batch in enumerate(BATCHES):
        rps, p99 = axes[0][column], axes[1][column]
        for (server, endpoint), style in styles.items():
            # A point with no answer (0 requests) has no place on a log scale.
            mine = [
                p
                for p in points
                if (p.server, p.endpoint, p.batch) == (server, endpoint, batch)
                and p.result.requests
            ]
            mine.sort(key=lambda p: p.connections)
            x = [p.connections for p in mine]
            rps.plot(x, [p.result.rps for p in mine], **style)
            p99.plot(x, [p.result.p99_ms for p in mine], **style)
        rps.set_title(f"batch {batch}: requests/s (higher is better)")
        p99.set_title(f"batch {batch}: p99 latency, ms (lower is better)")
        p99.set_xlabel("concurrent connections (wrk)")
        for axis in (rps, p99):
            axis.set_xscale("log", base=2)
            axis.set_yscale("log")
            axis.set_xticks(CONCURRENCIES, [str(c) for c in CONCURRENCIES])
            axis.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=4, frameon=False)
    figure.suptitle(f"The sample ONNX model, {workers} workers per server, one server at a time")
    figure.tight_layout(rect=(0, 0.08, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    pyplot.close(figure)


def _styles(points: list[Point]) -> dict[tuple[str, str], dict]:
    """A colour per server (the floor grey), a line and marker per endpoint, ours drawn
    thicker."""
    from matplotlib import colormaps

    servers_ = sorted({p.server for p in points}, key=_order)
    coloured = [s for s in servers_ if s != "floor"]
    colours = {"floor": "dimgray", **dict(zip(coloured, colormaps["tab10"].colors, strict=False))}
    styles = {}
    for server in servers_:
        endpoints = list(dict.fromkeys(p.endpoint for p in points if p.server == server))
        for index, endpoint in enumerate(endpoints):
            styles[(server, endpoint)] = {
                "color": colours[server],
                "linewidth": 3 if server == "aiship" else 1.5,
                "linestyle": LINES[index],
                "marker": MARKERS[index],
                "label": f"{server} {endpoint}",
            }
    return styles


def _order(server: str) -> tuple[int, str]:
    """Ours first, then the peers by name."""
    return (OURS.index(server) if server in OURS else len(OURS), server)


def _rps(point: Point | None) -> str:
    return f"{point.result.rps:.0f}" if point else "-"


def _ratio(value: float, other: Point | None) -> str:
    return f"{value / other.result.rps:.2f}x" if other and other.result.rps else "-"


def _point_line(p: Point) -> str:
    r = p.result
    return (
        f"{p.server:8s} {p.endpoint:18s} b{p.batch:<2d} c{p.connections:<3d} {r.rps:8.0f} req/s "
        f"p50 {r.p50_ms:7.2f} p99 {r.p99_ms:7.2f} ms errors {r.errors} load {p.load}"
    )
