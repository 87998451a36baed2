"""The edge's token buckets (``server/ratelimit.py``), shared by OFREP and the event intake."""

from __future__ import annotations

import pytest

from server.errors import EdgeError
from server.ratelimit import RateLimited, RateLimiter, check_all


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_refills_and_rounds_retry_after_up() -> None:
    clock = Clock()
    limiter = RateLimiter(2.0, clock=clock)
    limiter.check("k")
    limiter.check("k")
    with pytest.raises(EdgeError) as err:
        limiter.check("k")
    assert (err.value.status, err.value.code, err.value.headers) == (429, "rate_limited", {"Retry-After": "1"})
    limiter.check("other")  # a bucket per key
    clock.now += 0.5
    limiter.check("k")
    slow = RateLimiter(0.1, clock=clock)
    slow.check("k")
    with pytest.raises(EdgeError) as err:
        slow.check("k")
    assert err.value.headers == {"Retry-After": "10"}
    off = RateLimiter(0.0)
    for _ in range(100):
        off.check("k")  # 0 turns the limit off, and keeps nothing
    assert len(off) == 0


def test_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, burst=5, clock=clock)
    for _ in range(5):
        limiter.check("k")
    with pytest.raises(RateLimited):
        limiter.check("k")
    clock.now += 60  # refills to the burst, no further
    for _ in range(5):
        limiter.check("k")
    with pytest.raises(RateLimited):
        limiter.check("k")


def test_check_all_is_all_or_nothing() -> None:
    """A client refused by its own bucket takes nothing from the shared one."""
    clock = Clock()
    address = RateLimiter(1.0, burst=2, name="client address", clock=clock)
    key = RateLimiter(10.0, burst=5, name="SDK key", clock=clock)
    for _ in range(2):
        check_all((address, "noisy"), (key, "k"))
    for _ in range(50):
        with pytest.raises(RateLimited) as err:
            check_all((address, "noisy"), (key, "k"))
        assert err.value.limiter is address and "client address" in err.value.message
    for i in range(3):  # the key's last three tokens are still there for everyone else
        check_all((address, f"quiet-{i}"), (key, "k"))
    with pytest.raises(RateLimited) as err:
        check_all((address, "other"), (key, "k"))
    assert err.value.limiter is key and err.value.retry_after == 1


def test_retry_after_is_the_longest_wait() -> None:
    clock = Clock()
    fast = RateLimiter(10.0, burst=1, clock=clock)
    slow = RateLimiter(0.25, burst=1, clock=clock)
    check_all((fast, "a"), (slow, "a"))
    with pytest.raises(RateLimited) as err:
        check_all((fast, "a"), (slow, "a"))
    assert err.value.limiter is slow and err.value.headers["Retry-After"] == "4"


def test_charge_goes_into_debt_bounded_by_the_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(2.0, burst=4, clock=clock)
    limiter.check("k")
    limiter.charge("k", 100)  # a large body: the bucket is in debt, at most one burst deep
    assert limiter.wait("k") == pytest.approx((1 + 4) / 2)
    with pytest.raises(RateLimited) as err:
        limiter.check("k")
    assert err.value.headers["Retry-After"] == "3"
    clock.now += 2.5
    limiter.check("k")


def test_memory_is_bounded_least_recently_used_first() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, burst=1, max_keys=3, clock=clock)
    for key in ("a", "b", "c"):
        limiter.check(key)
    with pytest.raises(RateLimited):
        limiter.check("a")  # "a" is still tracked (and empty)
    limiter.check("d")  # over the bound: "b", the least recently used, is forgotten ("a" was just refused)
    assert len(limiter) == 3
    limiter.check("b")  # forgotten = full
    with pytest.raises(RateLimited):
        limiter.check("a")  # a refused client is not forgotten first
