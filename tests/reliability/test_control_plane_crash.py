"""kill -9 of the control plane in the middle of concurrent writes, while the edge serves.

Eight writers keep creating flag pairs, ``a-N`` and ``b-N`` in ONE commit each
(``POST /features/multiple``), while the edge (same data dir) serves traffic. The control plane's
process group gets SIGKILL mid-stream, then starts again on the same data dir. Then:

* every write that got a 2xx is in the store (both flags) and served by the edge;
* a write cut off by the kill is either entirely there or entirely absent;
* the edge never served half a commit: every answer has ``a-N`` exactly when it has ``b-N``
  (each publish is one LMDB transaction, and the restart's republish is one as well);
* the edge answered every request, before, during and after the crash.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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

WRITERS = 8


def _pairs(enabled: frozenset[str], prefix: str) -> set[str]:
    return {k.removeprefix(prefix) for k in enabled if k.startswith(prefix)}


def test_kill_control_plane_mid_write(tmp_path: Path) -> None:
    data = tmp_path / "host"
    data.mkdir()
    cp, ep = free_port(), free_port()
    acked: set[int] = set()
    cut_off: set[int] = set()
    lock = threading.Lock()
    stop = threading.Event()
    counter = iter(range(1_000_000))

    with control_plane(data, cp) as proc:
        base = f"http://127.0.0.1:{cp}"
        admin = httpx.Client(base_url=base, timeout=30)
        auth, keys = bootstrap_project(admin)
        assert create_flags(admin, auth, ["a-seed", "b-seed"]).status_code == 201
        with edge(data, ep) as _:
            url = f"http://127.0.0.1:{ep}"
            wait_until(lambda: ready(url)[0] == 200, "edge ready")
            load = Traffic(url, keys["client"], threads=3, pause=0.001)

            def writer() -> None:
                with httpx.Client(base_url=base, timeout=30) as c:
                    while not stop.is_set():
                        with lock:
                            n = next(counter)
                        try:
                            r = create_flags(c, auth, [f"a-{n}", f"b-{n}"])
                        except httpx.HTTPError:
                            with lock:
                                cut_off.add(n)
                            return
                        with lock:
                            (acked if r.status_code == 201 else cut_off).add(n)

            with traffic(load):
                load.wait_for(lambda a: a.ok and "a-seed" in a.enabled, "the seed pair")
                with ThreadPoolExecutor(WRITERS) as pool:
                    futures = [pool.submit(writer) for _ in range(WRITERS)]
                    wait_until(lambda: len(acked) >= 40, "40 acknowledged writes", timeout=60)
                    killed_at = time.monotonic()
                    os.killpg(proc.pid, signal.SIGKILL)  # the main process and its worker, as a crash
                    proc.wait(10)
                    stop.set()
                    for f in futures:
                        f.result(timeout=60)
                acked_at_kill = set(acked)
                time.sleep(1.0)  # the edge serves on its own
                restarted_at = time.monotonic()
                cp2 = free_port()
                with control_plane(data, cp2, log="cp-restarted.log"):
                    admin2 = httpx.Client(base_url=f"http://127.0.0.1:{cp2}", timeout=30)
                    auth2 = login(admin2)
                    listed: set[str] = set()
                    page = 1
                    while True:
                        r = admin2.get(
                            "/v1/projects/shop/features", params={"perPage": 1000, "page": page}, headers=auth2
                        )
                        assert r.status_code == 200, r.text
                        batch = r.json()
                        listed |= {f["key"] for f in batch}
                        if len(batch) < 1000:
                            break
                        page += 1
                    everything = {f"a-{n}" for n in acked_at_kill} | {f"b-{n}" for n in acked_at_kill}
                    served = load.wait_for(
                        lambda a: a.ok and everything <= a.enabled, "every acknowledged pair on the edge"
                    )
                    time.sleep(0.5)
            answers = load.stop()

    # No acknowledged write lost.
    assert everything <= listed, sorted(everything - listed)[:10]
    # A cut-off write is all or nothing, in the store and on the edge.
    stored_a, stored_b = _pairs(frozenset(listed), "a-"), _pairs(frozenset(listed), "b-")
    assert stored_a == stored_b, sorted(stored_a ^ stored_b)[:10]
    assert _pairs(served.enabled, "a-") == stored_a
    # Never half a commit on the edge, and never an older version after a newer one.
    for a in answers:
        if a.ok:
            assert _pairs(a.enabled, "a-") == _pairs(a.enabled, "b-"), f"half a commit served: {a}"
    assert_versions_never_go_back(answers, "edge")
    assert_no_failures(answers, "edge traffic across the control-plane crash")
    down = [a for a in answers if killed_at <= a.started < restarted_at]
    assert down, "no edge request while the control plane was dead"
    in_flight = cut_off - acked
    print(
        f"control plane kill -9: {len(acked_at_kill)} writes acknowledged, all present after restart; "
        f"{len(in_flight)} cut off ({len(in_flight & {int(x) for x in stored_a if x.isdigit()})} of them committed "
        f"whole); edge answered {len(answers)} requests ({len(down)} while the control plane was dead), 0 failed, "
        "no half commit seen"
    )
