"""An SDK event flood against the real edge: intake cannot fill the disk (issue 11, item 6).

A publishable key is public by design; before the fix one pushed 30 bulk requests of ~1 MB in
0.4 s and every byte went into the spool (no rate limit, no bound). Here the edge runs with small
limits (through their ``FLAGEDGE_*`` environment twins, so the unfixed edge starts as well and
fails the assertions instead of refusing the flags), one worker (the limits are per worker), and
the control plane's event consumer is held off (the test takes ``events/.consumer.lock``): the
consumer is down or behind, which is when a spool grows.

What must hold:

* the flood from one address is answered 429 with an integer ``Retry-After``, the envelope's
  ``rate_limited`` code, and what it got into the spool stays small;
* another address with the same key, and another key, are still accepted (one noisy client does
  not lock out the others); the limit per address holds whatever key it uses;
* once the spool reaches its bound, further events are refused with 503 + ``Retry-After`` and the
  spool on disk never passes the bound; ``/metrics`` counts every refusal by reason and the log
  says so a few times, not once per request;
* admin writes (a new flag, published to LMDB and served by the edge) work throughout;
* when the consumer runs again, every acknowledged event reaches SQLite (none was dropped) and
  intake takes events again.
"""

from __future__ import annotations

import fcntl
import os
import re
import sqlite3
from pathlib import Path
from typing import Any

import httpx

from bench.processes import bootstrap_project, free_port
from tests.reliability.support import control_plane, create_flags, edge, ready, wait_until

RATE_PER_ADDRESS = 5.0  # bursts of 10 tokens; a ~1 MB body costs 1 + 14
RATE_PER_KEY = 50.0
MAX_SPOOL = 3 << 20
EDGE_ENV = {
    "FLAGEDGE_EDGE_WORKERS": "1",
    "FLAGEDGE_EDGE_SHED_QUEUE_DELAY": "0",  # load shedding is another test's subject
    "FLAGEDGE_EDGE_INTAKE_RATE_PER_ADDRESS": str(RATE_PER_ADDRESS),
    "FLAGEDGE_EDGE_INTAKE_RATE_PER_KEY": str(RATE_PER_KEY),
    "FLAGEDGE_EDGE_INTAKE_MAX_SPOOL_BYTES": str(MAX_SPOOL),
    "FLAGEDGE_EDGE_INTAKE_MIN_FREE_BYTES": "0",
}
# ~0.9 MB: 15 events of 60 KB attributes each (each attribute object must stay under 64 KiB).
BIG_BULK: list[dict[str, Any]] = [
    {"type": "event", "event": "flood", "userId": f"u{i}", "attributes": {"blob": "x" * 60_000}} for i in range(15)
]
SMALL = {"event": "clicked", "userId": "u1"}


def _client(url: str, address: str) -> httpx.Client:
    """A client whose connections come from ``address`` (any 127.0.0.0/8 address is local)."""
    return httpx.Client(base_url=url, timeout=30, transport=httpx.HTTPTransport(local_address=address))


def _spool_bytes(data: Path) -> int:
    return sum(f.stat().st_size for f in (data / "events").glob("spool-*.jsonl") if f.exists())


def _post(client: httpx.Client, path: str, body: Any, key: str) -> httpx.Response:
    return client.post(path, params={"publishableKey": key}, json=body)


def _refused(metrics: str) -> dict[str, int]:
    return {m[1]: int(m[2]) for m in re.finditer(r'flagedge_intake_refused_total\{reason="(\w+)"\} (\d+)', metrics)}


def test_event_flood_is_limited_and_the_spool_bounded(tmp_path: Path) -> None:
    data = tmp_path / "host"
    (data / "events").mkdir(parents=True)
    cp, ep = free_port(), free_port()
    # The consumer is held off: nothing empties the spool until the lock is released.
    lock = os.open(data / "events" / ".consumer.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    acknowledged = 0
    try:
        with control_plane(data, cp) as _, httpx.Client(base_url=f"http://127.0.0.1:{cp}", timeout=30) as admin:
            auth, keys = bootstrap_project(admin)
            staging = admin.post(
                "/v1/projects/shop/environments",
                json={"name": "Staging", "key": "staging", "type": "staging"},
                headers=auth,
            )
            assert staging.status_code == 201, staging.text
            key_a, key_b = keys["client"], staging.json()["sdkKeys"]["client"][0]["key"]
            with edge(data, ep, env=EDGE_ENV):
                url = f"http://127.0.0.1:{ep}"
                wait_until(lambda: ready(url)[0] == 200 and ready(url)[1]["environments"] == 2, "edge ready")
                noisy = _client(url, "127.0.0.1")

                # 1. The flood: 30 bulks of ~0.9 MB from one address with one key, back to back.
                flood = [_post(noisy, "/bulk", BIG_BULK, key_a) for _ in range(30)]
                statuses = [r.status_code for r in flood]
                spool_after_flood = _spool_bytes(data)
                limited = [r for r in flood if r.status_code == 429]
                assert set(statuses) <= {200, 429}, statuses
                assert len(limited) >= 25, f"the flood was not rate-limited: {statuses}"
                for r in limited:
                    assert r.headers["retry-after"].isdigit() and int(r.headers["retry-after"]) >= 1, r.headers
                    assert r.json()["error"]["code"] == "rate_limited", r.text
                acknowledged += len(BIG_BULK) * statuses.count(200)
                assert spool_after_flood <= 2 * 1_000_000, spool_after_flood

                # 2. Others are not locked out: the same key from another address, another key.
                with _client(url, "127.0.0.2") as neighbour, _client(url, "127.0.0.3") as other:
                    assert _post(neighbour, "/event", SMALL, key_a).status_code == 200
                    assert _post(other, "/event", SMALL, key_b).status_code == 200
                    acknowledged += 2
                # The limit per address holds whatever key the address uses (bursts of 10 requests).
                again = [_post(noisy, "/event", SMALL, key_b).status_code for _ in range(15)]
                assert 429 in again, again
                acknowledged += again.count(200)

                # 3. The spool's bound: many addresses, ~0.9 MB each, until the spool is full.
                full: list[httpx.Response] = []
                for i in range(10, 16):
                    with _client(url, f"127.0.0.{i}") as c:
                        r = _post(c, "/bulk", BIG_BULK, key_b)
                    assert r.status_code in (200, 429, 503), r.text
                    acknowledged += len(BIG_BULK) if r.status_code == 200 else 0
                    full += [r] if r.status_code == 503 else []
                    assert _spool_bytes(data) <= MAX_SPOOL
                assert full, "the spool took more than its bound"
                for r in full:
                    assert r.json()["error"]["code"] == "unavailable" and int(r.headers["retry-after"]) >= 1, r.text
                # Refused because it did not fit: the spool is within one request of its bound.
                assert MAX_SPOOL - 1_000_000 < _spool_bytes(data) <= MAX_SPOOL

                # 4. Admin writes still work, and reach the edge, while intake refuses events.
                assert create_flags(admin, auth, ["during-flood"]).status_code == 201
                wait_until(
                    lambda: (
                        "during-flood"
                        in httpx.get(f"{url}/features/enabled", params={"publishableKey": key_a}).json()["features"]
                    ),
                    "the new flag on the edge",
                )
                refused = _refused(httpx.get(f"{url}/metrics").text)
                assert refused["rate_limited_address"] >= 25 and refused["spool_full"] >= 2, refused

                # 5. The consumer runs again: every acknowledged event is stored, intake reopens.
                fcntl.flock(lock, fcntl.LOCK_UN)
                database = data / "control_plane.sqlite3"

                def stored() -> int:
                    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
                        count: int = db.execute("SELECT count(*) FROM events").fetchone()[0]
                        return count

                wait_until(lambda: stored() >= acknowledged, f"{acknowledged} acknowledged events in SQLite", 30)
                with _client(url, "127.0.0.21") as c:
                    wait_until(lambda: _post(c, "/event", SMALL, key_a).status_code == 200, "intake open again", 30)
                assert _spool_bytes(data) <= MAX_SPOOL
        log = (tmp_path / "host-edge.log").read_text()
    finally:
        os.close(lock)
    assert stored() >= acknowledged
    # Logged, but not once per refused request.
    assert 2 <= log.count("refusing SDK events") <= 6, log
    print(
        f"intake flood: {len(limited)} of 30 flood requests 429, spool {spool_after_flood} bytes after the flood; "
        f"{len(full)} requests 503 at the {MAX_SPOOL}-byte bound; refused {refused}; "
        f"{acknowledged} acknowledged events all stored"
    )
