"""One publisher per data dir, and no worker outlives its master.

* A second ``python -m control_plane serve`` on a data dir that a running control plane
  publishes exits non-zero with a message naming the data dir lock, and the first keeps
  publishing without losing a change. Two publishers used to run side by side, each diffing
  against its own picture of LMDB: a key created through one and revoked through the other
  stayed accepted by the edge, a flag deleted that way kept being served.
* kill -9 of a ``serve`` master (control plane, edge) takes its granian workers along within a
  few seconds (they used to keep serving, old code, sharing the port with the next start), and
  a control plane restarted on the same data dir right after starts (the lock died with them).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.processes import REPO, bootstrap_project, free_port
from tests.reliability.support import children, control_plane, create_flags, edge, ready, wait_until
from tests.support.redis_server import RedisServer


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (not yet reaped by init) is gone for our purpose.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _features(url: str, server_key: str) -> set[str]:
    r = httpx.get(f"{url}/features", headers={"Authorization": f"Bearer {server_key}"}, timeout=10)
    assert r.status_code == 200, r.text
    return {f["key"] for f in r.json()["features"]}


def test_second_control_plane_on_a_data_dir_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "host"
    data.mkdir()
    cp, ep, cp2 = free_port(), free_port(), free_port()
    with control_plane(data, cp) as _, edge(data, ep, "--workers", "1"):
        first = httpx.Client(base_url=f"http://127.0.0.1:{cp}", timeout=30)
        auth, keys = bootstrap_project(first)
        url = f"http://127.0.0.1:{ep}"
        wait_until(lambda: ready(url)[0] == 200, "edge ready")
        assert create_flags(first, auth, ["doomed", "kept"]).status_code == 201
        log = tmp_path / "second.log"
        with open(log, "wb") as out:
            second = subprocess.Popen(
                [sys.executable, "-m", "control_plane", "serve", "--data-dir", str(data), "--port", str(cp2)],
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            # Either it refuses (exits) or it serves: whichever happens first.
            def settled() -> bool:
                if second.poll() is not None:
                    return True
                try:
                    return httpx.get(f"http://127.0.0.1:{cp2}/health", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_until(settled, "the second control plane to exit or serve", timeout=30)
            # Changes spread over both processes if the second one runs: a key created through
            # one and revoked through the other, a flag created by one and deleted by the other.
            other = httpx.Client(base_url=f"http://127.0.0.1:{cp2 if second.poll() is None else cp}", timeout=30)
            r = other.post("/v1/projects/shop/environments/prod/keys", json={"server": True}, headers=auth)
            assert r.status_code == 200, r.text
            # An admin reads every key in full; the new one is the one that was not there before.
            (extra,) = (k["key"] for k in r.json()["sdkKeys"]["server"] if k["key"] != keys["server"])
            assert other.delete("/v1/projects/shop/features/doomed", headers=auth).status_code in (200, 204)
            wait_until(lambda: "doomed" not in _features(url, keys["server"]), "the deleted flag gone")
            r = first.put(f"/v1/projects/shop/environments/prod/keys/{extra}/invalidate", headers=auth)
            assert r.status_code == 200, r.text
            assert create_flags(first, auth, ["later"]).status_code == 201
            wait_until(lambda: "later" in _features(url, keys["server"]), "the flag created after")
            bearer = {"Authorization": f"Bearer {extra}"}
            status = httpx.get(f"{url}/features", headers=bearer, timeout=10).status_code
            assert status == 403, f"the key revoked through the first control plane answers {status}"
            assert "doomed" not in _features(url, keys["server"]), "the deleted flag is served again"
            assert second.poll() not in (None, 0), (
                f"a second control plane serves on the same data dir:\n{log.read_text()}"
            )
            assert "already published by another running process" in log.read_text(), log.read_text()
            # The first one was never disturbed.
            assert ready(f"http://127.0.0.1:{cp}")[0] == 200
            other.close()
        finally:
            if second.poll() is None:
                os.killpg(second.pid, signal.SIGKILL)
                second.wait(10)
        first.close()


def _kill_master_and_wait_for_workers(proc: subprocess.Popen[bytes], what: str) -> None:
    workers = children(proc.pid)
    assert workers, f"{what}: no workers found"
    os.kill(proc.pid, signal.SIGKILL)  # the master only, as a crash or an OOM kill would
    proc.wait(10)
    killed = time.monotonic()
    wait_until(lambda: not any(_alive(w) for w in workers), f"{what}: workers {sorted(workers)} to die", timeout=5)
    assert time.monotonic() - killed < 5


def test_killed_master_takes_its_workers_along(tmp_path: Path) -> None:
    data = tmp_path / "host"
    data.mkdir()
    cp, ep = free_port(), free_port()
    with control_plane(data, cp) as proc:
        bootstrap_project(httpx.Client(base_url=f"http://127.0.0.1:{cp}", timeout=30))
        with edge(data, ep, "--workers", "2") as edge_proc:
            wait_until(lambda: len(children(edge_proc.pid)) == 2, "two edge workers")
            _kill_master_and_wait_for_workers(edge_proc, "edge")
        _kill_master_and_wait_for_workers(proc, "control plane")
    # At once on the same data dir: the dead worker's lock is gone, nothing else holds the port.
    cp2 = free_port()
    with control_plane(data, cp2, log="cp-restarted.log"):
        assert ready(f"http://127.0.0.1:{cp2}")[0] == 200


def test_second_sync_on_an_edge_data_dir_is_refused(tmp_path: Path, redis_server: RedisServer) -> None:
    """``python -m server sync`` is an LMDB writer too: a second one on the same data dir (a
    restart beside a stuck predecessor, a second unit by mistake) refuses to start, and a
    control plane pointed at that data dir does too."""
    data = tmp_path / "edge"
    data.mkdir()
    redis = redis_server
    first = subprocess.Popen(
        [sys.executable, "-m", "server", "sync", "--data-dir", str(data), "--redis-url", redis.url],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until(lambda: (data / "publisher.lock").exists(), "the first sync to take the lock")
        time.sleep(0.5)
        second = subprocess.run(
            [sys.executable, "-m", "server", "sync", "--data-dir", str(data), "--redis-url", redis.url],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1, second.stderr
        assert "sync cannot start" in second.stderr and "already published" in second.stderr, second.stderr
        assert str(first.pid) in second.stderr
        cp = subprocess.run(
            [sys.executable, "-m", "control_plane", "serve", "--data-dir", str(data), "--port", str(free_port())],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cp.returncode != 0 and "already published" in cp.stderr, cp.stderr
        assert first.poll() is None, "the first sync was disturbed"
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
