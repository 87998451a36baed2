"""Peak throughput on loopback: the edge's ``/features/evaluated`` (W1, W2, scale sets) and the
granian ceiling, server pinned to core 0 and wrk to core 1, at fixed connection counts."""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench import wrk
from bench.datasets import evaluated_script
from bench.processes import free_port, process
from bench.stack import EDGE_CPU, LOAD_CPU, Stack

CEILING_SCRIPT = 'function request() return wrk.format("GET", "/features/evaluated?publishableKey=x") end'


def edge(stack: Stack, connections: list[int], seconds: float) -> list[wrk.WrkResult]:
    script = evaluated_script(stack.client_key, stack.dataset)
    wrk.run(stack.edge_url, script, connections[0], 1, cpu=LOAD_CPU)  # warm-up: page in, JIT-free but caches
    return [wrk.run(stack.edge_url, script, c, seconds, cpu=LOAD_CPU) for c in connections]


def ceiling(
    connections: list[int], seconds: float, body_bytes: int | None = None, script: str = CEILING_SCRIPT
) -> list[wrk.WrkResult]:
    """granian serving :mod:`bench.ceiling_app` with the edge's interface and defaults; its answer
    padded to ``body_bytes`` if given, loaded by ``script`` (GET by default)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"FLAGEDGE_CEILING_BYTES": str(body_bytes)} if body_bytes else None
    with tempfile.TemporaryDirectory(prefix="flagedge-ceiling-") as tmp:
        args = ["granian", "--interface", "asgi", "--no-access-log", "--workers", "1", "--port", str(port)]
        with process([*args, "bench.ceiling_app:app"], f"{url}/", Path(tmp) / "ceiling.log", env=env, cpu=EDGE_CPU):
            wrk.run(url, script, connections[0], 1, cpu=LOAD_CPU)
            return [wrk.run(url, script, c, seconds, cpu=LOAD_CPU) for c in connections]
