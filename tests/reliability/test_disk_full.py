"""Disk full under the control plane's data directory, while the edge serves traffic.

The host's data directory is a 4 MiB ``tmpfs`` (mounted here, unmounted in the teardown; the
suite runs as root). After a project and one flag are published, a filler file takes every free
byte and the test writes flags until the disk refuses one.

Decision: a write the disk cannot take is not saved (SQLite rolls the transaction back) and is
answered ``503 {"error": {"code": "storage_unavailable", "details": [{"code": "disk_full"}]}}``
with ``Retry-After``, never a bare 500; the control plane's ``/ready`` answers 503 naming it
(``storage``) and probes the disk on each call, so it comes back by itself when space returns;
``/health`` stays 200. If the disk fills between the SQLite commit and the LMDB publish, the
write is saved and answered ``503 publish_failed`` (as with the LMDB map full). The edge keeps
serving the last good snapshot throughout and stays ready (it only reads). Every acknowledged
write is kept and reaches the edge after recovery.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.processes import bootstrap_project, free_port
from tests.reliability.support import (
    Traffic,
    assert_no_failures,
    assert_versions_never_go_back,
    control_plane,
    create_flags,
    edge,
    ready,
    traffic,
    wait_until,
)
from tests.support.error_shapes import error_of, shape_of

SIZE = "4m"


@contextlib.contextmanager
def small_disk(path: Path) -> Iterator[Path]:
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root")
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> None:
    """Write until the filesystem says ENOSPC."""
    with open(path, "wb", buffering=0) as f:
        chunk = b"\xff" * 4096
        with contextlib.suppress(OSError):
            while True:
                f.write(chunk)


def test_disk_full_during_traffic(tmp_path: Path) -> None:
    cp, ep = free_port(), free_port()
    with small_disk(tmp_path / "host") as data, control_plane(data, cp), edge(data, ep):
        admin = httpx.Client(base_url=f"http://127.0.0.1:{cp}", timeout=30)
        auth, keys = bootstrap_project(admin)
        assert create_flags(admin, auth, ["before"]).status_code == 201
        url = f"http://127.0.0.1:{ep}"
        wait_until(lambda: ready(url)[0] == 200, "edge ready")
        with traffic(Traffic(url, keys["client"], threads=2, pause=0.005)) as (load,):
            load.wait_for(lambda a: a.ok and "before" in a.enabled, "the first flag")
            filler = data / "filler"
            fill(filler)
            acked: list[str] = []
            refused: httpx.Response | None = None
            for i in range(200):
                r = create_flags(admin, auth, [f"full-{i}"])
                if r.status_code != 201:
                    refused = r
                    break
                acked.append(f"full-{i}")
            assert refused is not None, "200 writes fitted on a full disk"
            cp_ready = admin.get("/ready")
            cp_health = admin.get("/health")
            edge_ready = ready(url)
            last_good = load.wait_for(lambda a: a.ok, "an answer while the disk is full")

            # Space returns: readiness and writes recover by themselves, no restart.
            filler.unlink()
            wait_until(lambda: admin.get("/ready").status_code == 200, "control plane ready again", 10)
            after = create_flags(admin, auth, ["after"])
            served = load.wait_for(lambda a: a.ok and {"after", *acked} <= a.enabled, "the writes after recovery")
        saved = admin.get(f"/v1/projects/shop/features/full-{len(acked)}", headers=auth)

    # The refused write: a 503 in DevCycle's shape (a DevCycle route) with a reason, and
    # Retry-After. Its detail says which failure it was: not saved (storage) or saved but not
    # published (snapshot).
    assert refused.status_code == 503, refused.text
    assert shape_of(refused.json()) == "devcycle", refused.text
    error = error_of(refused.json())
    assert error["code"] == "unavailable", error
    assert error["details"][0]["field"] in ("storage", "snapshot"), error
    if error["details"][0]["field"] == "storage":
        assert "not saved" in error["message"], error
        assert error["details"][0]["code"] == "disk_full", error
        assert refused.headers.get("retry-after", "").isdigit()
        # Not saved: the transaction rolled back.
        assert saved.status_code == 404, saved.text
    else:
        assert "saved but could not be published" in error["message"], error
        assert saved.status_code == 200, saved.text
    assert cp_ready.status_code == 503, cp_ready.text
    named = cp_ready.json().get("storage", cp_ready.json()["publish"])
    assert named["code"] in ("disk_full", "lmdb_error") and named["error"], cp_ready.text
    assert cp_health.status_code == 200
    # The edge kept serving and stayed ready; every acknowledged write reached it afterwards.
    assert edge_ready[0] == 200, edge_ready
    assert after.status_code == 201, after.text
    assert_no_failures(load.snapshot(), "edge traffic while the disk was full")
    assert_versions_never_go_back(load.snapshot(), "edge")
    print(
        f"disk full: {len(acked)} writes fitted after filling, then {refused.status_code} {error['code']} "
        f"({error['details'][0]['code'] if error['details'] else ''}), control plane /ready 503; edge served "
        f"v{last_good.version} with 0 failures and stayed ready; after freeing space /ready 200 and the next "
        f"write was served as v{served.version}"
    )
