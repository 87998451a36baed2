"""kill -9 of the control plane's granian worker: granian starts a new one and the admin API
answers again within seconds (issue 11, item 7f: before, the master stopped serving for good).

The edge has the same option (``tests/reliability/test_edge_worker_kill.py``).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx

from bench.processes import bootstrap_project, free_port
from tests.reliability.support import children, control_plane, wait_until


def test_a_killed_control_plane_worker_is_restarted(tmp_path: Path) -> None:
    data = tmp_path / "host"
    data.mkdir()
    port = free_port()
    with control_plane(data, port) as proc:
        admin = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)
        auth, _ = bootstrap_project(admin)
        wait_until(lambda: len(children(proc.pid)) == 1, "one control-plane worker")
        (victim,) = children(proc.pid)
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()

        def answers() -> bool:
            try:
                return admin.get("/v1/projects", headers=auth).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(answers, "the admin API answering again", timeout=15)
        print(f"admin API answered again {time.monotonic() - killed:.1f} s after the kill")
        assert proc.poll() is None
        assert children(proc.pid) and victim not in children(proc.pid)
