"""Scale curves: edge throughput, p99, worker RSS and compile time versus the number of flags,
and throughput versus the number of edge workers.

Each point is a fresh stack (control plane loaded through its API, then the edge), so memory and
compile figures belong to that flag count alone. Workers are all pinned to the edge's core: the
curve shows what extra workers cost or gain on one core, with the load generator on the other.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import orjson

import evaluator
from bench import throughput
from bench.processes import rss_mb
from bench.stack import Stack, running
from server.snapshot_store import SnapshotReader, decode


@dataclass(frozen=True)
class FlagsPoint:
    flags: int
    load_seconds: float
    load_requests: int
    snapshot_bytes: int
    # The edge's reload path for one environment: checksum + decode, re-encode, compile.
    compile_ms: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    rss_mb_per_worker: float


@dataclass(frozen=True)
class WorkersPoint:
    workers: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    rss_mb_per_worker: float


def compile_ms(stack: Stack) -> tuple[float, int]:
    """Median time of the edge's compile path over the environment value it reads from LMDB."""
    reader = SnapshotReader(stack.data_dir)
    try:
        _, tables = reader.read_all()
    finally:
        reader.close()
    raw = max(tables[b"environments"].values(), key=len)
    runs = 1 if len(raw) > 5_000_000 else 5
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        evaluator.Snapshot(orjson.dumps(decode(raw)["document"]))
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2), len(raw)


def _worker_rss(stack: Stack) -> float:
    pids = stack.workers()
    return round(statistics.mean(rss_mb(p) for p in pids), 1) if pids else 0.0


def flags_curve(counts: list[int], connections: int, seconds: float) -> list[dict[str, Any]]:
    points = []
    for n in counts:
        with running(f"scale-{n}") as stack:
            result = throughput.edge(stack, [connections], seconds)[0]
            ms, size = compile_ms(stack)
            point = FlagsPoint(
                flags=n,
                load_seconds=stack.load.seconds,
                load_requests=stack.load.requests,
                snapshot_bytes=size,
                compile_ms=ms,
                rps=result.rps,
                p50_ms=result.p50_ms,
                p99_ms=result.p99_ms,
                errors=result.errors,
                rss_mb_per_worker=_worker_rss(stack),
            )
        print(f"  flags={n}: {point}", flush=True)
        points.append(asdict(point))
    return points


def workers_curve(counts: list[int], connections: int, seconds: float) -> list[dict[str, Any]]:
    points = []
    for workers in counts:
        with running("w2", workers=workers) as stack:
            result = throughput.edge(stack, [connections], seconds)[0]
            point = WorkersPoint(
                workers=workers,
                rps=result.rps,
                p50_ms=result.p50_ms,
                p99_ms=result.p99_ms,
                errors=result.errors,
                rss_mb_per_worker=_worker_rss(stack),
            )
        print(f"  workers={workers}: {point}", flush=True)
        points.append(asdict(point))
    return points
