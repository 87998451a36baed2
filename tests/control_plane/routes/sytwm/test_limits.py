"""The /api/v1 rate limits: per API key and per API key and client address, 429 with an integer
Retry-After and the envelope, never shared across keys, configurable (0 turns one off)."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from control_plane.app import create_app
from control_plane.settings import Settings
from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.routes.sytwm.support import bearer, create_key, site

EVENT = {"event_type": "page_hit"}


def _api(
    tmp_path: Path,
    per_key: float,
    key_burst: float,
    per_address: float,
    address_burst: float,
    database_url: str | None = None,
) -> Iterator[Api]:
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        jwt_secret="l" * 40,
        api_v1_rate_per_key=per_key,
        api_v1_burst_per_key=key_burst,
        api_v1_rate_per_address=per_address,
        api_v1_burst_per_address=address_burst,
    )
    app = create_app(settings)
    with TestClient(app) as client:
        yield Api(client)


@pytest.fixture
def per_key(tmp_path: Path, database_url: str | None) -> Iterator[Api]:
    """3 requests per key, then one every 100 s; no per-address limit (on each store)."""
    yield from _api(tmp_path, per_key=0.01, key_burst=3, per_address=0, address_burst=1, database_url=database_url)


@pytest.fixture
def per_address(tmp_path: Path, database_url: str | None) -> Iterator[Api]:
    """2 requests per key and address, then one every 10 s; no per-key limit (on each store)."""
    yield from _api(tmp_path, per_key=0, key_burst=1, per_address=0.1, address_burst=2, database_url=database_url)


def test_429_with_retry_after_and_the_envelope_per_key(per_key: Api) -> None:
    s = site(per_key)
    c = per_key.client
    for _ in range(3):
        assert c.post("/api/v1/telemetry", json=EVENT, headers=bearer(s.submit)).status_code == 201
    r = c.post("/api/v1/telemetry", json=EVENT, headers=bearer(s.submit))
    err = assert_error(r, 429, "rate_limited")["error"]
    assert "API key" in err["message"]
    assert r.headers["retry-after"].isdigit() and 1 <= int(r.headers["retry-after"]) <= 100
    # Reads are limited too, and by the same key's bucket only: other keys keep their own.
    assert_error(c.get("/api/v1/posts", headers=bearer(s.submit)), 429, "rate_limited")
    assert c.get("/api/v1/telemetry", headers=bearer(s.read)).status_code == 200
    fresh = create_key(per_key, s.owner, s.org, "submit")["key"]
    assert c.post("/api/v1/telemetry", json=EVENT, headers=bearer(fresh)).status_code == 201
    # The refused requests stored nothing.
    assert len(c.get("/api/v1/telemetry", headers=bearer(s.read)).json()["items"]) == 4


def test_per_address_limits_are_per_key_and_address(per_address: Api) -> None:
    s = site(per_address)
    app = per_address.client.app
    other_key = create_key(per_address, s.owner, s.org, "submit")["key"]

    async def send(address: str, key: str) -> int:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            r = await client.post("/api/v1/telemetry", json=EVENT, headers=bearer(key))
            if r.status_code == 429:
                assert int(r.headers["retry-after"]) >= 1
                assert r.json()["error"]["code"] == "rate_limited"
            return r.status_code

    async def run() -> list[int]:
        return [
            await send("10.0.0.1", s.submit),
            await send("10.0.0.1", s.submit),
            await send("10.0.0.1", s.submit),  # this address used its two
            await send("10.0.0.2", s.submit),  # another address, same key: its own bucket
            await send("10.0.0.1", other_key),  # same address, another key: its own bucket
        ]

    assert asyncio.run(run()) == [201, 201, 429, 201, 201]


def test_zero_turns_the_limits_off(tmp_path: Path) -> None:
    for api in _api(tmp_path, per_key=0, key_burst=1, per_address=0, address_burst=1):
        s = site(api)
        for _ in range(60):
            assert api.client.post("/api/v1/telemetry", json=EVENT, headers=bearer(s.submit)).status_code == 201
