"""Our real processes for end-to-end tests: a control plane or an edge serving a data dir on a
free loopback port, started with the operator's command line (DESIGN §8) and waited for, with an
HTTP client on it. Tests that need more (a baseline checkout, pinning, replicas) use
``bench.processes.process`` directly."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import httpx

from bench.processes import free_port, process


@contextmanager
def _serving(
    module: str, data: Path, args: tuple[str, ...], probe: str, log: str, env: dict[str, str] | None, timeout: float
) -> Iterator[httpx.Client]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [module, "serve", "--data-dir", str(data), "--port", str(port), *args]
    with process(cmd, f"{url}{probe}", data / log, env=env), httpx.Client(base_url=url, timeout=timeout) as client:
        yield client


def control_plane(
    data: Path,
    *args: str,
    log: str = "control_plane.log",
    env: dict[str, str] | None = None,
    timeout: float = 30,
) -> AbstractContextManager[httpx.Client]:
    """``python -m control_plane serve --data-dir DATA ARGS…``; yields an admin client on it."""
    return _serving("control_plane", data, args, "/health", log, env, timeout)


def edge(
    data: Path,
    *args: str,
    log: str = "edge.log",
    ready: bool = False,
    env: dict[str, str] | None = None,
    timeout: float = 30,
) -> AbstractContextManager[httpx.Client]:
    """``python -m server serve --data-dir DATA ARGS…``; yields a client on it once ``/health``
    (or, with ``ready``, ``/ready``: a snapshot loaded) answers 200."""
    return _serving("server", data, args, "/ready" if ready else "/health", log, env, timeout)
