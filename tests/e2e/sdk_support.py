"""What the end-to-end tests of real client packages share: an npm fixture installed from its
committed lock file, and a control plane with an edge, real processes on free ports."""

from __future__ import annotations

import queue
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.processes import bootstrap_project, create_flags
from tests.support import services


def npm_fixture(directory: Path, package: str) -> Path:
    """``directory`` with its node_modules (``npm ci`` from the committed lock file when
    ``package`` is not installed yet)."""
    npm = shutil.which("npm")
    assert shutil.which("node") and npm, "node and npm are required for this end-to-end test"
    if not (directory / "node_modules" / package).exists():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=directory, check=True, timeout=300, capture_output=True
        )
    return directory


@dataclass
class Flagedge:
    """A running control plane and edge on one data directory, project ``shop``, environment
    ``prod``; ``keys`` are its SDK keys by kind, ``auth`` the owner's admin headers."""

    edge: str
    admin: httpx.Client
    auth: dict[str, str]
    keys: dict[str, str]
    data_dir: Path


@contextmanager
def running_flagedge(data_dir: Path, flags: list[str]) -> Iterator[Flagedge]:
    """The control plane (which also moves edge events into its SQLite) and a 2-worker edge,
    with ``flags`` created enabled for everyone in ``prod``."""
    with services.control_plane(data_dir, log="cp.log") as admin:
        auth, keys = bootstrap_project(admin)
        if flags:
            r = create_flags(admin, auth, flags)
            assert r.status_code == 201, r.text
        with services.edge(data_dir, "--workers", "2", ready=True) as edge:
            yield Flagedge(str(edge.base_url).rstrip("/"), admin, auth, keys, data_dir)


def checkout_feature(variations: str, serves: str) -> dict[str, Any]:
    """A DevCycle feature ``checkout`` whose String variable ``checkout-flow`` is ``flow-<v>`` in
    each variation ``v`` of ``variations``, serving ``serves`` to everyone in ``prod``."""
    return {
        "key": "checkout",
        "name": "Checkout",
        "variables": [{"key": "checkout-flow", "type": "String"}],
        "variations": [{"key": v, "name": v.upper(), "variables": {"checkout-flow": f"flow-{v}"}} for v in variations],
        "configurations": {
            "prod": {
                "status": "active",
                "targets": [
                    {
                        "audience": {"filters": {"operator": "and", "filters": [{"type": "all"}]}},
                        "distribution": [{"_variation": serves, "percentage": 1}],
                    }
                ],
            }
        },
    }


def lines_of(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    """The process's stdout lines, stripped, as they come (a reader thread puts them)."""
    out: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.put(line.strip())

    threading.Thread(target=read, daemon=True).start()
    return out
