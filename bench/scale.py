"""Scale curves: edge throughput, p99, worker RSS and compile time versus the number of flags,
and throughput versus the number of edge workers.

Each point is a fresh stack (control plane loaded through its API, then the edge), so memory and
compile figures belong to that flag count alone. Workers are all pinned to the edge's core: the
curve shows what extra workers cost or gain on one core, with the load generator on the other.

The flag-count curve runs with load shedding off: at 100k flags one answer takes about 100 ms of
the worker's loop, which the default 0.1 s queue-delay shedding answers with 503s, and the
curve is about capacity.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import orjson

import evaluator
from bench import throughput
from bench.processes import rss_mb
from bench.stack import Stack, running
from contract.framing import decode, payload
from contract.store import SnapshotReader, flag_environment
from server.delta import inline_entries


def compile_ms(stack: Stack) -> tuple[float, int]:
    """Median time of the edge's whole-environment compile path (an environment's document and
    its flags, as read from LMDB) over the largest environment, and its stored size."""
    reader = SnapshotReader(stack.data_dir)
    try:
        _, tables = reader.read_all()
    finally:
        reader.close()
    sizes: dict[str, int] = {}
    for stored, raw in tables["flags"].items():
        env_id = flag_environment(stored)
        sizes[env_id] = sizes.get(env_id, 0) + len(raw)
    env_id = max(tables["environments"], key=lambda e: sizes.get(e, 0) + len(tables["environments"][e]))
    raw = tables["environments"][env_id]
    flags = [payload(v) for k, v in tables["flags"].items() if flag_environment(k) == env_id]
    extras, inline = inline_entries(decode(raw)["document"])
    size = len(raw) + sizes.get(env_id, 0)
    runs = 1 if size > 5_000_000 else 5
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        evaluator.Snapshot.assemble(orjson.dumps(extras), inline + flags)
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2), size


def _worker_rss(stack: Stack) -> float:
    pids = stack.workers()
    return round(statistics.mean(rss_mb(p) for p in pids), 1) if pids else 0.0


NO_SHEDDING = {"FLAGEDGE_EDGE_SHED_QUEUE_DELAY": "0"}


def _served(stack: Stack, connections: int, seconds: float) -> dict[str, Any]:
    """wrk's figures at one concurrency, then the mean RSS of the workers that served them."""
    result = throughput.edge(stack, [connections], seconds)[0]
    return {
        "rps": result.rps,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "errors": result.errors,
        "rss_mb_per_worker": _worker_rss(stack),
    }


def flags_curve(counts: list[int], connections: int, seconds: float) -> list[dict[str, Any]]:
    """Per flag count: load time through the API, snapshot size, the edge's compile time (ms)
    and what one worker serves."""
    points = []
    for n in counts:
        with running(f"scale-{n}", edge_env=NO_SHEDDING) as stack:
            served = _served(stack, connections, seconds)
            ms, size = compile_ms(stack)
            point = {
                "flags": n,
                "load_seconds": stack.load.seconds,
                "load_requests": stack.load.requests,
                "snapshot_bytes": size,
                "compile_ms": ms,
                **served,
            }
        print(f"  flags={n}: {point}", flush=True)
        points.append(point)
    return points


def workers_curve(counts: list[int], connections: int, seconds: float) -> list[dict[str, Any]]:
    points = []
    for workers in counts:
        with running("w2", workers=workers) as stack:
            point = {"workers": workers, **_served(stack, connections, seconds)}
        print(f"  workers={workers}: {point}", flush=True)
        points.append(point)
    return points
