"""Shared fixtures: where the conformance vectors live, and a real redis-server."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.postgres_server import PostgresServer
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


# The database every test's PostgreSQL database is copied from, migrated once per session.
TEMPLATE = "flagedge_template"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the test session, with a migrated template database."""
    from control_plane.store import Store

    server = PostgresServer(free_port())
    server.start()
    try:
        Store(server.create_database(name=TEMPLATE)).close()
        yield server
    finally:
        server.kill()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test (dropped after it)."""
    url = postgres_server.create_database(template=TEMPLATE)
    try:
        yield url
    finally:
        postgres_server.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """Each store in turn: None (SQLite in the data dir), then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url
