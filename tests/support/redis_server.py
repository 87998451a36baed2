"""A real ``redis-server`` for the tests: the helper lives in :mod:`bench.redis_server` (the soak
benchmark starts one too), re-exported here for ``tests/conftest.py`` and the tests."""

from __future__ import annotations

from bench.redis_server import RedisServer, free_port

__all__ = ["RedisServer", "free_port"]
