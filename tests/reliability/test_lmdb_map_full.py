"""LMDB map full, while the edge serves traffic.

The control plane runs with a 1 MiB LMDB map (``--lmdb-map-size``) and takes flags with large
payloads, one commit each, until a publish no longer fits.

Decision: the SQLite commit comes first (it is the source of truth; a crash between the two
steps is repaired by the republish on start), so when LMDB then refuses the publish the change
is already saved and cannot be rolled back. The write therefore answers
``503 {"error": {"code": "publish_failed", "details": [{"code": "lmdb_map_full", ...}]}}`` saying
the change is saved but not published; the control plane logs ``PUBLISH FAILED`` at ERROR,
its ``/ready`` answers 503 naming the failure (``/health`` stays 200: the process is alive and
the admin API still reads and writes), nothing partial reaches LMDB (a failed write transaction
is aborted whole), and the edge keeps serving the last good snapshot, still ready. Projects left
unpublished are retried with every later publish; restarting with a larger map republishes
everything, including the writes saved while the map was full.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from bench.processes import bootstrap_project, free_port
from tests.reliability.support import (
    Traffic,
    assert_no_failures,
    assert_versions_never_go_back,
    control_plane,
    create_flags,
    edge,
    login,
    ready,
    traffic,
    wait_until,
)
from tests.support.error_shapes import error_of, shape_of

SMALL_MAP = 1 << 20
LARGE_MAP = 64 << 20


def _big_flag(key: str) -> list[dict[str, Any]]:
    """A flag enabled for everyone with ~90 KB of variant payload. The variant never matches the
    traffic's contexts, so the payload fills LMDB without being in every answer."""
    nobody = {"type": "context", "field": "user.id", "operator": "IS", "values": ["nobody"]}
    config = {"variants": [{"key": "huge", "filter": nobody, "payload": {"blob": ["x" * 9000] * 10}}]}
    on = {"status": "active", "targeting": {"rules": [{"filter": {"type": "constant", "value": True}}]}}
    return [{"key": key, "name": key, "configurations": {"prod": {**on, "config": config}}}]


def test_lmdb_map_full_during_traffic(tmp_path: Path) -> None:
    data = tmp_path / "host"
    data.mkdir()
    cp, ep = free_port(), free_port()
    acked: list[str] = []
    with ExitStack() as outer:
        first = ExitStack()
        outer.callback(first.close)
        first.enter_context(control_plane(data, cp, "--lmdb-map-size", str(SMALL_MAP)))
        admin = httpx.Client(base_url=f"http://127.0.0.1:{cp}", timeout=30)
        auth, keys = bootstrap_project(admin)
        assert create_flags(admin, auth, ["small"]).status_code == 201
        outer.enter_context(edge(data, ep))
        url = f"http://127.0.0.1:{ep}"
        wait_until(lambda: ready(url)[0] == 200, "edge ready")
        with traffic(Traffic(url, keys["client"], threads=2, pause=0.005)) as (load,):
            load.wait_for(lambda a: a.ok and "small" in a.enabled, "the first flag")
            failed: httpx.Response | None = None
            for i in range(100):
                r = admin.post("/v1/projects/shop/features/multiple", json=_big_flag(f"big-{i}"), headers=auth)
                if r.status_code != 201:
                    failed = r
                    break
                acked.append(f"big-{i}")
            assert failed is not None, "100 large flags fitted in a 1 MiB map"
            refused = f"big-{len(acked)}"
            last_good = load.wait_for(lambda a: a.ok and set(acked) <= a.enabled, "every acknowledged flag")
            # A second write while the map is full fails the same way; it is saved as well.
            again = create_flags(admin, auth, ["after-full"])
            time.sleep(1.0)
            cp_ready = admin.get("/ready")
            edge_ready = ready(url)
            saved = [admin.get(f"/v1/projects/shop/features/{k}", headers=auth) for k in (refused, "after-full")]
            health = admin.get("/health")
            first.close()  # stop the control plane (its data stays)
            time.sleep(0.5)
        log = (data.parent / f"{data.name}-cp.log").read_text()

        # The write failed loudly, with a clear answer.
        assert failed.status_code == 503, failed.text
        # In DevCycle's shape (a DevCycle route): the detail names the snapshot as what failed.
        assert shape_of(failed.json()) == "devcycle", failed.text
        error = error_of(failed.json())
        assert error["code"] == "unavailable" and "saved but could not be published" in error["message"], error
        assert error["details"][0]["field"] == "snapshot" and error["details"][0]["code"] == "lmdb_map_full", error
        assert again.status_code == 503, again.text
        assert error_of(again.json())["details"][0]["field"] == "snapshot", again.text
        assert "PUBLISH FAILED" in log and "LMDB snapshot store is full" in log
        assert cp_ready.status_code == 503, cp_ready.text
        assert cp_ready.json()["publish"]["code"] == "lmdb_map_full", cp_ready.text
        assert health.status_code == 200
        # ...and was saved (the source of truth has it).
        assert [r.status_code for r in saved] == [200, 200]
        # The edge kept the last good snapshot and stayed ready.
        assert edge_ready[0] == 200, edge_ready
        during = load.between(last_good.ended)
        assert {(a.version, a.enabled) for a in during if a.ok} == {(last_good.version, last_good.enabled)}
        assert refused not in last_good.enabled and "after-full" not in last_good.enabled
        assert_no_failures(load.snapshot(), "edge traffic while the map was full")

        # Recovery: a larger map; the restart republishes the saved changes.
        with traffic(Traffic(url, keys["client"], threads=2, pause=0.005)) as (after,):
            cp2 = free_port()
            with control_plane(data, cp2, "--lmdb-map-size", str(LARGE_MAP), log="cp-larger.log"):
                admin2 = httpx.Client(base_url=f"http://127.0.0.1:{cp2}", timeout=30)
                assert admin2.get("/ready").status_code == 200
                recovered = after.wait_for(
                    lambda a: a.ok and {refused, "after-full", *acked} <= a.enabled, "the saved changes on the edge"
                )
                auth2 = login(admin2)
                assert create_flags(admin2, auth2, ["later"]).status_code == 201
                after.wait_for(lambda a: a.ok and "later" in a.enabled, "a later change")
                assert ready(url)[0] == 200
    answers = load.snapshot() + after.snapshot()
    assert_no_failures(after.snapshot(), "edge traffic across the restart with a larger map")
    assert_versions_never_go_back(answers, "edge")
    print(
        f"LMDB map full: {len(acked)} large flags fitted in {SMALL_MAP >> 20} MiB, write {len(acked) + 1} answered "
        f"503 publish_failed/lmdb_map_full, /ready 503; edge kept v{last_good.version} for "
        f"{len(during)} requests (0 failed) while full and while the control plane was down; after a restart with "
        f"{LARGE_MAP >> 20} MiB the saved changes were served as v{recovered.version}"
    )
