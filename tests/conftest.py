"""Shared fixtures: where the conformance vectors live, and a real redis-server."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
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


# The stores a parametrised test runs on, in this order.
STORES = ("sqlite", "postgresql")


@contextmanager
def _fresh_postgres_database(server: PostgresServer) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database (a copy of the template), dropped afterwards."""
    url = server.create_database(template=TEMPLATE)
    try:
        yield url
    finally:
        server.drop_database(url.rsplit("/", 1)[1])


def _store_url(request: pytest.FixtureRequest, postgres_fixture: str) -> str | None:
    """None for SQLite (in the data dir), else the URL ``postgres_fixture`` gives."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue(postgres_fixture)
    return url


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test (dropped after it)."""
    with _fresh_postgres_database(postgres_server) as url:
        yield url


@pytest.fixture(params=STORES)
def database_url(request: pytest.FixtureRequest) -> str | None:
    """Each store in turn: None (SQLite in the data dir), then a fresh PostgreSQL database."""
    return _store_url(request, "postgres_url")


@pytest.fixture(scope="module")
def module_postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database shared by the tests of one module."""
    with _fresh_postgres_database(postgres_server) as url:
        yield url


@pytest.fixture(scope="module", params=STORES)
def module_database_url(request: pytest.FixtureRequest) -> str | None:
    """``database_url`` for a module-scoped world (one app per store, built once per module):
    pytest runs the module's tests on SQLite, then all of them again on PostgreSQL."""
    return _store_url(request, "module_postgres_url")
