"""The edge's rate limits: the shared token buckets (:mod:`contract.ratelimit`, where the contract
is described) answering 429 as an :class:`~server.errors.EdgeError`. OFREP evaluations and the SDK
event intake use them."""

from __future__ import annotations

from contract.ratelimit import Exhausted, TokenBuckets, take_all
from server.errors import EdgeError

__all__ = ["RateLimited", "RateLimiter", "check_all"]


class RateLimited(EdgeError):
    """A 429 with an integer ``Retry-After``; ``limiter`` is the one that refused."""

    def __init__(self, limiter: TokenBuckets, retry_after: int) -> None:
        super().__init__(429, f"rate limit reached for this {limiter.name}", headers={"Retry-After": str(retry_after)})
        self.limiter = limiter
        self.retry_after = retry_after


class RateLimiter(TokenBuckets):
    """Token buckets per key whose :meth:`check` raises :class:`RateLimited`."""

    def check(self, key: str) -> None:
        """Take one token for ``key``, or raise :class:`RateLimited`."""
        check_all((self, key))


def check_all(*limits: tuple[TokenBuckets, str]) -> None:
    """One token from each ``(limiter, key)``, all or nothing, or :class:`RateLimited`."""
    try:
        take_all(*limits)
    except Exhausted as e:
        raise RateLimited(e.limiter, e.retry_after) from None
