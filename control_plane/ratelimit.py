"""The control plane's rate limits: login brute-force protection that nobody can turn into a
lock-out (DESIGN.md section 5b), and the limits of the key-authenticated API (:class:`KeyLimits`).

Guesses are slowed where they come from, never where they are aimed: a shared budget per account
would let anyone lock its owner out by guessing wrong ten times. So:

* per client address, at most ``per_minute`` attempts (any account) in any 60 s: one address
  cannot spray passwords over many accounts;
* per account *and* address, exponential backoff on failures: after ``free_failures`` wrong
  passwords that address waits 1 s, then 2 s, 4 s, … (at most ``max_backoff``) before each next
  attempt at that account; a correct password resets it;
* per account, an alarm: once ``alarm_failures`` wrong passwords (from all addresses) hit it within
  ``alarm_window``, an account is under a distributed attack and backoff starts at the first
  failure of any address. This only slows addresses that guessed wrong: an address with a clean
  history for the account still logs in at once.

Every check runs before the password is verified, so a locked address is refused even with the
right password (otherwise the answer would tell a guesser which password was right).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

from contract.ratelimit import Exhausted, TokenBuckets, take_all
from control_plane.errors import ApiError

_MAX_TRACKED = 100_000


def too_many(retry_after: float, message: str = "too many attempts, retry later") -> ApiError:
    """429 with an integer ``Retry-After`` of at least one second."""
    seconds = max(1, math.ceil(retry_after))
    return ApiError(429, message, headers={"Retry-After": str(seconds)})


class KeyLimits:
    """Token buckets (:mod:`contract.ratelimit`) for the routes of a key-authenticated API: one
    per API key, and one per API key *and* client address. Neither is ever shared across keys: a
    noisy site cannot use up another site's budget, and one address hammering a key that is
    public (a submit key ships in web pages) is refused before the key's own budget runs out for
    every other visitor, since a refused request takes no token from any bucket (all or nothing).
    A rate of 0 turns that limit off. One control-plane worker holds all of them."""

    def __init__(self, per_key: float, per_key_burst: float, per_address: float, per_address_burst: float) -> None:
        self.per_key = TokenBuckets(per_key, per_key_burst, name="API key")
        self.per_address = TokenBuckets(per_address, per_address_burst, name="API key from this client address")

    def check(self, key_id: str, address: str) -> None:
        """Take a token from both buckets, or 429 with ``Retry-After``."""
        try:
            take_all((self.per_key, key_id), (self.per_address, f"{key_id} {address}"))
        except Exhausted as e:
            raise too_many(e.retry_after, str(e)) from None


class SlidingWindow:
    """At most ``limit`` hits per key in any ``window`` seconds; over it, 429 with Retry-After."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._hits) > _MAX_TRACKED:
                # Memory stays bounded under a spray of distinct keys.
                self._hits.clear()
            for key in keys:
                hits = self._hits.setdefault(key, deque())
                while hits and now - hits[0] > self.window:
                    hits.popleft()
                if len(hits) >= self.limit:
                    raise too_many(self.window - (now - hits[0]))
            for key in keys:
                self._hits[key].append(now)


@dataclass
class _Failures:
    count: int
    last: float
    locked_until: float


class LoginGuard:
    """The login limits described in the module docstring; all state is in this process."""

    def __init__(
        self,
        per_minute: int,
        *,
        free_failures: int = 5,
        max_backoff: float = 900.0,
        alarm_failures: int = 20,
        alarm_window: float = 900.0,
        forget_after: float = 3600.0,
    ) -> None:
        self.addresses = SlidingWindow(per_minute)
        self.free_failures = free_failures
        self.max_backoff = max_backoff
        self.alarm_failures = alarm_failures
        self.alarm_window = alarm_window
        # A pair's failures older than this are forgiven (the backoff starts over).
        self.forget_after = forget_after
        self._pairs: dict[tuple[str, str], _Failures] = {}
        self._accounts: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, account: str, address: str) -> None:
        """429 if ``address`` must wait before trying ``account`` again, or has used its minute."""
        now = time.monotonic()
        with self._lock:
            pair = self._pairs.get((account, address))
            if pair is not None and now < pair.locked_until:
                raise too_many(pair.locked_until - now)
        self.addresses.check(f"client:{address}")

    def failed(self, account: str, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._pairs) > _MAX_TRACKED or len(self._accounts) > _MAX_TRACKED:
                self._pairs.clear()
                self._accounts.clear()
            recent = self._accounts.setdefault(account, deque())
            while recent and now - recent[0] > self.alarm_window:
                recent.popleft()
            recent.append(now)
            pair = self._pairs.get((account, address))
            if pair is None or now - pair.last > self.forget_after:
                pair = self._pairs[(account, address)] = _Failures(0, now, 0.0)
            pair.count += 1
            pair.last = now
            free = 0 if len(recent) >= self.alarm_failures else self.free_failures
            if pair.count > free:
                pair.locked_until = now + min(self.max_backoff, 2.0 ** min(pair.count - free - 1, 30))

    def succeeded(self, account: str, address: str) -> None:
        with self._lock:
            self._pairs.pop((account, address), None)
