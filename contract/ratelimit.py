"""Token-bucket rate limits: the one limiter the edge (OFREP, SDK event intake) and the control
plane (the shareyourthoughtswith.me API) use. Each process maps :class:`Exhausted` to its own 429.

Contract:

* A :class:`TokenBuckets` keeps one bucket per key (an SDK key's hash, a client address, an API
  key id): ``rate`` tokens per second up to ``burst`` (``max(1, rate)`` unless given). A key seen
  for the first time starts with a full bucket. ``rate <= 0`` turns the limiter off (every check
  passes, nothing is kept).
* :func:`take_all` takes one token from each of several buckets, all or nothing: when any of them
  is empty nothing is taken and :class:`Exhausted` says, in ``retry_after``, the whole seconds (at
  least 1, rounded up) until every one of them has a token. All or nothing is what keeps one
  client from locking out another: a noisy address that is refused does not also drain the bucket
  of the key it shares with everyone else.
* :meth:`TokenBuckets.charge` takes more tokens from a bucket after the fact (a request's cost
  known only once its body is read); the bucket may go into debt down to ``-burst``, which later
  checks wait out.
* Memory is bounded: at most ``max_keys`` buckets per limiter; the least recently used go first
  (a forgotten bucket is a full one, which an idle bucket soon is anyway; a refused
  request counts as a use).
* Each worker process has its own limiters, so ``N`` workers let through up to ``N * rate``.
  Not thread-safe: checks run on the worker's event loop.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

MAX_KEYS = 100_000


class Exhausted(Exception):
    """A bucket is empty: ``limiter`` refused, and every bucket has a token in ``retry_after`` s."""

    def __init__(self, limiter: TokenBuckets, retry_after: int) -> None:
        super().__init__(f"rate limit reached for this {limiter.name}")
        self.limiter = limiter
        self.retry_after = retry_after


class TokenBuckets:
    """Token buckets per key; ``name`` says what a key is (``SDK key``, ``client address``)."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        name: str = "SDK key",
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = max(1.0, rate if burst is None else burst)
        self.name = name
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def __len__(self) -> int:
        return len(self._buckets)

    def _tokens(self, key: str, now: float) -> float:
        tokens, last = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - last) * self.rate)

    def _set(self, key: str, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)

    def wait(self, key: str) -> float:
        """Seconds until ``key``'s bucket holds a token (0 when it does now)."""
        if not self.enabled:
            return 0.0
        if key in self._buckets:
            # A refused key is in use too: were it evicted first, a client that keeps knocking
            # while refused would get a full bucket back from a spray of other keys.
            self._buckets.move_to_end(key)
        tokens = self._tokens(key, self.clock())
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def charge(self, key: str, tokens: float) -> None:
        """Take ``tokens`` more from ``key``'s bucket, into debt (at most ``burst`` of it) if need be."""
        if not self.enabled or tokens <= 0:
            return
        now = self.clock()
        self._set(key, max(-self.burst, self._tokens(key, now) - tokens), now)


def take_all(*limits: tuple[TokenBuckets, str]) -> None:
    """One token from each ``(limiter, key)``, all or nothing (see the module docstring)."""
    worst: tuple[float, TokenBuckets] | None = None
    for limiter, key in limits:
        wait = limiter.wait(key)
        if wait > 0 and (worst is None or wait > worst[0]):
            worst = (wait, limiter)
    if worst is not None:
        raise Exhausted(worst[1], max(1, math.ceil(worst[0])))
    for limiter, key in limits:
        limiter.charge(key, 1.0)
