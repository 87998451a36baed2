"""Browser SDKs call the edge cross-origin: CORS answers preflights and tags responses."""

from __future__ import annotations

import warnings
from pathlib import Path

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
