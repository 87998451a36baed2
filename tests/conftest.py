"""Shared fixtures: where the conformance vectors live, and a real redis-server."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.redis_server import RedisServer, free_port

REPO = Path(__file__).resolve().parent.parent


def vectors_dir() -> Path:
    """``$VECTORS_DIR``, else the repository's ``tests/vectors``; missing vectors fail."""
    configured = os.environ.get("VECTORS_DIR")
    path = Path(configured) if configured else REPO / "tests" / "vectors"
    if not path.is_dir():
        raise RuntimeError(f"conformance vectors not found at {path}")
    return path


def load_vectors(name: str) -> Any:
    return json.loads((vectors_dir() / name).read_text())


@pytest.fixture(scope="session")
def vectors() -> Path:
    return vectors_dir()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server for one test (killed after it)."""
    server = RedisServer(tmp_path / "redis", free_port())
    server.start()
    try:
        yield server
    finally:
        server.kill()
