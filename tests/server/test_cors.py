"""Browser SDKs call the edge cross-origin: CORS answers preflights and tags responses."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from server.app import create_app
from server.settings import EdgeSettings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


def test_preflight_and_simple_requests(tmp_path: Path) -> None:
    with TestClient(create_app(EdgeSettings(data_dir=tmp_path))) as client:
        pre = client.options(
            "/ofrep/v1/evaluate/flags",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert pre.status_code == 200
        assert pre.headers["access-control-allow-origin"] == "*"
        assert "authorization" in pre.headers["access-control-allow-headers"].lower()
        simple = client.get("/health", headers={"Origin": "https://app.example"})
        assert simple.headers["access-control-allow-origin"] == "*"
        assert "etag" in simple.headers["access-control-expose-headers"].lower()


def test_cors_can_be_restricted_or_off(tmp_path: Path) -> None:
    only = EdgeSettings(data_dir=tmp_path, cors_origins="https://app.example")
    with TestClient(create_app(only)) as client:
        assert (
            client.get("/health", headers={"Origin": "https://app.example"}).headers["access-control-allow-origin"]
            == "https://app.example"
        )
        assert (
            "access-control-allow-origin"
            not in client.get("/health", headers={"Origin": "https://evil.example"}).headers
        )
    with TestClient(create_app(EdgeSettings(data_dir=tmp_path, cors_origins=""))) as client:
        assert (
            "access-control-allow-origin" not in client.get("/health", headers={"Origin": "https://a.example"}).headers
        )


@pytest.mark.parametrize("origins", ["*", "https://app.example", ""])
@pytest.mark.parametrize("origin", [None, "https://app.example", "https://evil.example"])
def test_hot_answers_carry_what_the_cors_middleware_adds(tmp_path: Path, origins: str, origin: str | None) -> None:
    """The hot path answers before the middleware stack and tags its answers itself: the same
    headers, in the same order, as a HEAD of the same request answered through the stack."""
    with TestClient(create_app(EdgeSettings(data_dir=tmp_path, cors_origins=origins))) as client:
        headers = {"X-Request-Id": "req-1", **({"Origin": origin} if origin else {})}
        hot = client.get("/features/evaluated", headers=headers)
        routed = client.head("/features/evaluated", headers=headers)
        assert hot.status_code == routed.status_code == 401
        assert hot.headers.multi_items() == routed.headers.multi_items()
        assert ("vary", "Origin") in hot.headers.multi_items() or not origins
