"""An in-process sliding-window limiter (login brute-force protection)."""

from __future__ import annotations

import threading
import time
from collections import deque

from control_plane.errors import ApiError

_MAX_TRACKED = 100_000


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
                    retry = max(1, int(self.window - (now - hits[0])) + 1)
                    raise ApiError(429, "too many attempts, retry later", headers={"Retry-After": str(retry)})
            for key in keys:
                self._hits[key].append(now)
