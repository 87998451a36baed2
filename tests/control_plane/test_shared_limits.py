"""The rate limits several replicas share in the store (control_plane/shared_limits.py): full token
buckets are pruned from ``rate_buckets`` while every limit still holds (on each store)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from control_plane.errors import ApiError
from control_plane.shared_limits import SharedKeyLimits, SharedLoginGuard
from control_plane.store import Store

PER_KEY = "API key"
PER_ADDRESS = "API key from this client address"


class Clock:
    """Seconds since the epoch that a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path, database_url: str | None) -> Iterator[Store]:
    s = Store(database_url or tmp_path / "cp.sqlite3")
    yield s
    s.close()


def rows(store: Store, limiter: str) -> set[str]:
    return {r["key"] for r in store.all("SELECT key FROM rate_buckets WHERE limiter = ?", (limiter,))}


def refused(limits: SharedKeyLimits, key: str, address: str) -> bool:
    try:
        limits.check(key, address)
    except ApiError as e:
        assert e.status == 429
        return True
    return False


def test_full_buckets_are_pruned_and_limits_still_hold(store: Store) -> None:
    clock = Clock()
    # Per key: 2 requests, then one per 100 s (slow to refill); per key and address: one request,
    # then 20 per second (full again 50 ms after each use).
    limits = SharedKeyLimits(store, 0.01, 2, 20, 1, prune_every=10, clock=clock)
    assert not refused(limits, "hot", "10.0.0.1")
    assert not refused(limits, "hot", "10.0.0.2")
    assert refused(limits, "hot", "10.0.0.3")  # the key's budget is used up
    for i in range(30):
        assert not refused(limits, f"idle{i}", "10.0.0.9")
    assert rows(store, PER_ADDRESS) == {"hot 10.0.0.1", "hot 10.0.0.2", "hot 10.0.0.3"} | {
        f"idle{i} 10.0.0.9" for i in range(30)
    }
    assert len(rows(store, PER_KEY)) == 31

    clock.now += 5  # every per-address bucket is full again; no per-key bucket is
    assert not refused(limits, "fresh", "10.0.0.5")  # not yet time to prune (every 10 s)
    assert len(rows(store, PER_ADDRESS)) == 34
    clock.now += 5
    assert not refused(limits, "fresh", "10.0.0.6")  # this check prunes
    assert rows(store, PER_ADDRESS) == {"fresh 10.0.0.6"}  # the one it just used (not full yet)
    assert len(rows(store, PER_KEY)) == 32  # none of them has refilled: kept
    assert refused(limits, "hot", "10.0.0.4")  # the limit holds

    clock.now += 100  # "hot" has a token back; the idle keys' buckets are full, "fresh"'s is not
    assert not refused(limits, "hot", "10.0.0.5")
    assert refused(limits, "hot", "10.0.0.5")  # and only that one
    assert rows(store, PER_KEY) == {"hot", "fresh"}  # the idle keys' full buckets went
    assert not refused(limits, "idle0", "10.0.0.9")  # a pruned key starts full, as a new one
    assert not refused(limits, "idle0", "10.0.0.8")
    assert refused(limits, "idle0", "10.0.0.7")


def test_one_prune_deletes_a_bounded_batch(store: Store) -> None:
    clock = Clock()
    limits = SharedKeyLimits(store, 0, 1, 10, 1, prune_every=1, prune_batch=7, clock=clock)
    for i in range(20):
        limits.check("k", f"10.0.1.{i}")  # (the first check prunes an empty table)
    clock.now += 1  # all 20 buckets are full again
    limits.check("k", "10.0.1.0")  # uses one of them again, then prunes a batch of the 19 others
    assert len(rows(store, PER_ADDRESS)) == 13
    # A full batch means more are waiting: the next checks prune again at once, not a second later.
    assert refused(limits, "k", "10.0.1.0")
    assert len(rows(store, PER_ADDRESS)) == 6
    assert refused(limits, "k", "10.0.1.0")
    assert rows(store, PER_ADDRESS) == {"k 10.0.1.0"}
    assert limits.prune(clock.now) == 0
    assert refused(limits, "k", "10.0.1.0")  # the limit holds


def test_rows_of_a_limiter_turned_off_go_once_long_idle(store: Store) -> None:
    clock = Clock()
    SharedKeyLimits(store, 1, 5, 0, 1, clock=clock).check("k", "10.0.2.1")
    assert rows(store, PER_KEY) == {"k"}
    # This replica runs no per-key limit (another one may, with its own rates): kept for an hour.
    off = SharedKeyLimits(store, 0, 1, 0, 1, clock=clock)
    assert off.prune(clock.now + 3000) == 0
    assert off.prune(clock.now + 3600) == 1
    assert rows(store, PER_KEY) == set()


def test_replicas_prune_and_check_at_once(tmp_path: Path, database_url: str | None) -> None:
    """Two replicas (two stores on one database), two threads each, every check also pruning: no
    check fails (no deadlock, no bucket lost under a check) and the hot key's limit holds."""
    target = database_url or tmp_path / "cp.sqlite3"
    stores = [Store(target), Store(target)]
    rate, burst = 5.0, 5
    allowed: list[int] = []
    errors: list[Exception] = []
    started = time.time()

    def run(limits: SharedKeyLimits, worker: int) -> None:
        ok = 0
        try:
            for i in range(40):
                ok += not refused(limits, "hot", "10.0.3.1")
                refused(limits, f"idle{worker}-{i}", "10.0.3.2")
        except Exception as e:  # reported by the test's own thread
            errors.append(e)
        allowed.append(ok)

    try:
        threads = [
            threading.Thread(target=run, args=(SharedKeyLimits(s, rate, burst, 1000, 1000, prune_every=0), n))
            for n, s in enumerate(stores * 2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.time() - started
        assert not errors, errors
        assert sum(allowed) <= burst + rate * elapsed + 1
        assert sum(allowed) >= burst
    finally:
        for s in stores:
            s.close()


def login_rows(store: Store) -> tuple[int, int]:
    hits = store.all("SELECT count(*) AS n FROM login_hits")[0]["n"]
    backoffs = store.all("SELECT count(*) AS n FROM login_backoff")[0]["n"]
    return int(hits), int(backoffs)


def test_login_rows_of_addresses_never_seen_again_are_pruned(postgres_url: str) -> None:
    """Logins from many addresses (a scan, or clients long gone) leave ``login_hits`` and
    ``login_backoff`` rows; once they count as no row they go, in bounded batches, while the
    backoff of an address still locked out holds."""
    store = Store(postgres_url)
    try:
        clock = Clock()
        guard = SharedLoginGuard(store, 1000, prune_every=60, prune_batch=25, clock=clock)
        for i in range(30):
            address = f"10.0.3.{i}"
            guard.check("alice@example.com", address)
            for _ in range(guard.free_failures + 1):
                guard.failed("alice@example.com", address)
        assert login_rows(store) == (30 + 30 * (guard.free_failures + 1), 30)
        # One address keeps failing: a day later it is still locked out, the others forgotten.
        clock.now += 86_400
        for _ in range(guard.free_failures + 1):
            guard.failed("bob@example.com", "10.0.4.1")
        with pytest.raises(ApiError) as locked:
            guard.check("bob@example.com", "10.0.4.1")  # prunes one batch first
        assert locked.value.status == 429
        assert login_rows(store)[1] == 30 + 1 - 25
        while guard.prune(clock.now):
            pass
        assert login_rows(store) == (guard.free_failures + 1, 1)  # bob's failures (within the alarm window) and backoff
        with pytest.raises(ApiError):
            guard.check("bob@example.com", "10.0.4.1")  # the live backoff was kept
        guard.check("alice@example.com", "10.0.3.0")  # forgotten: allowed, as if never seen
    finally:
        store.close()
