"""A benchmark stack: a real control plane loaded with a dataset through its API, then a real
edge (granian) pinned to core 0 serving it from LMDB, both on free loopback ports."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import datasets, devcycle_data
from bench.processes import THIS, Checkout, bootstrap_project, free_port, process, worker_pids

EDGE_CPU = 0
LOAD_CPU = 1


@dataclass(frozen=True)
class Stack:
    dataset: str
    flags: int
    edge_url: str
    client_key: str
    server_key: str
    data_dir: Path
    edge_pid: int
    load: datasets.Loaded

    def workers(self) -> list[int]:
        return worker_pids(self.edge_pid)


def wait_serving(edge: str, key: str, flags: int, timeout: float) -> None:
    """Wait until ``edge`` answers ``/features/evaluated`` for ``key`` with all ``flags`` flags."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{edge}/features/evaluated", params={"publishableKey": key}, timeout=30)
            if r.status_code == 200 and len(r.json()["features"]) == flags:
                return
            last = f"{r.status_code} {r.text[:200]}"
        except httpx.HTTPError as e:
            last = repr(e)
        time.sleep(0.2)
    raise RuntimeError(f"edge never served {flags} flags: {last}")


def wait_devcycle(edge: str, server_key: str, features: int, timeout: float) -> None:
    """Wait until ``edge`` serves a DevCycle server config of all ``features``."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{edge}/config/v2/server/{server_key}.json", timeout=30)
            if r.status_code == 200 and len(r.json()["features"]) == features:
                return
            last = f"{r.status_code} {r.text[:200]}"
        except httpx.HTTPError as e:
            last = repr(e)
        time.sleep(0.2)
    raise RuntimeError(f"edge never served a DevCycle config of {features} features: {last}")


@contextmanager
def running(
    dataset: str,
    workers: int = 1,
    tmp: Path | None = None,
    edge_env: dict[str, str] | None = None,
    checkout: Checkout = THIS,
) -> Iterator[Stack]:
    """Load ``dataset`` through the control plane, then start the edge (with ``edge_env`` added
    to its environment) and wait until it serves every flag. The edge starts after the load so
    it compiles the final snapshot once."""
    with ExitStack() as stack:
        if tmp is None:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"flagedge-bench-{dataset}-")))
        cp = free_port()
        cp_url = f"http://127.0.0.1:{cp}"
        stack.enter_context(
            process(
                ["control_plane", "serve", "--data-dir", str(tmp), "--port", str(cp)],
                f"{cp_url}/health",
                tmp / "control_plane.log",
                cpu=LOAD_CPU,
                checkout=checkout,
            )
        )
        with httpx.Client(base_url=cp_url, timeout=60) as admin:
            auth, keys = bootstrap_project(admin)
            if dataset == devcycle_data.DATASET:
                started = time.perf_counter()
                devcycle_data.load(admin, auth, "shop", "prod", devcycle_data.W2_FEATURES, devcycle_data.W2_VARIABLES)
                loaded = datasets.Loaded(devcycle_data.W2_FEATURES, round(time.perf_counter() - started, 2), 1)
            else:
                loaded = datasets.load(admin, auth, "shop", "prod", datasets.flags_for(dataset))
        port = free_port()
        edge_url = f"http://127.0.0.1:{port}"
        edge = stack.enter_context(
            process(
                ["server", "serve", "--data-dir", str(tmp), "--port", str(port), "--workers", str(workers)],
                f"{edge_url}/health",
                tmp / "edge.log",
                env=edge_env,
                cpu=EDGE_CPU,
                timeout=120,
                checkout=checkout,
            )
        )
        if dataset == devcycle_data.DATASET:
            # Some features are hidden from client keys: count what server SDKs get instead.
            wait_devcycle(edge_url, keys["server"], loaded.flags, timeout=300)
        else:
            wait_serving(edge_url, keys["client"], loaded.flags, timeout=300)
        yield Stack(dataset, loaded.flags, edge_url, keys["client"], keys["server"], tmp, edge.pid, loaded)
