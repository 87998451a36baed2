"""The edge over granian's RSGI interface (server/rsgi.py) answers every route as over ASGI:
two real edges, one per interface, on one data directory, asked the same requests (hot routes,
routed ones, errors, CORS preflights, request bodies, a server-sent event stream), give the same
status, headers and body."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bench import datasets
from bench.processes import bootstrap_project, free_port, process

# Headers granian or the moment sets, not the app: the date, and connection management (granian
# announces "connection: close" after an ASGI answer that left the request body unread, as a
# 413 does; over RSGI hyper closes or drains without saying so).
VOLATILE = {"date", "connection"}
RID = {"X-Request-Id": "rsgi-parity-1"}


@dataclass(frozen=True)
class Edges:
    asgi: httpx.Client
    rsgi: httpx.Client
    client_key: str
    server_key: str


def _edge(data: Path, interface: str) -> tuple[list[str], str, Path]:
    port = free_port()
    args = ["server", "serve", "--data-dir", str(data), "--port", str(port), "--interface", interface]
    return args, f"http://127.0.0.1:{port}", data / f"edge-{interface}.log"


@pytest.fixture(scope="module")
def edges(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edges]:
    data = tmp_path_factory.mktemp("data")
    cp_port = free_port()
    with process(
        ["control_plane", "serve", "--data-dir", str(data), "--port", str(cp_port)],
        f"http://127.0.0.1:{cp_port}/health",
        data / "control_plane.log",
    ):
        with httpx.Client(base_url=f"http://127.0.0.1:{cp_port}", timeout=30) as admin:
            auth, keys = bootstrap_project(admin)
            datasets.load(admin, auth, "shop", "prod", datasets.w1_flags())
        asgi_args, asgi_url, asgi_log = _edge(data, "asgi")
        rsgi_args, rsgi_url, rsgi_log = _edge(data, "rsgi")
        with (
            process(asgi_args, f"{asgi_url}/ready", asgi_log),
            process(rsgi_args, f"{rsgi_url}/ready", rsgi_log),
            httpx.Client(base_url=asgi_url, timeout=10) as asgi,
            httpx.Client(base_url=rsgi_url, timeout=10) as rsgi,
        ):
            yield Edges(asgi, rsgi, keys["client"], keys["server"])


def _headers(r: httpx.Response) -> list[tuple[str, str]]:
    return [(k, v) for k, v in r.headers.multi_items() if k not in VOLATILE]


def _answer(r: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    return r.status_code, _headers(r), r.content


def _same(edges: Edges, method: str, url: str, **kwargs: object) -> httpx.Response:
    a = edges.asgi.request(method, url, **kwargs)  # type: ignore[arg-type]
    r = edges.rsgi.request(method, url, **kwargs)  # type: ignore[arg-type]
    assert _answer(r) == _answer(a), f"{method} {url}"
    return r


def test_hot_routes_answer_as_over_asgi(edges: Edges) -> None:
    key = edges.client_key
    query = f"publishableKey={key}&context.user.id=u-1&context.company.plan=pro"
    for path in ("/features/evaluated", "/features/enabled"):
        ok = _same(edges, "GET", f"{path}?{query}", headers=RID)
        assert ok.status_code == 200
        _same(edges, "GET", f"{path}?{query}", headers={**RID, "If-None-Match": ok.headers["etag"]})
        _same(edges, "GET", f"{path}?{query}", headers={**RID, "Origin": "https://app.example"})
        _same(edges, "GET", f"{path}?publishableKey=nope", headers=RID)
        _same(edges, "GET", path, headers=RID)
        _same(edges, "GET", f"{path}?{query}&waitForVersion=x", headers=RID)
        _same(edges, "HEAD", f"{path}?{query}", headers=RID)
    bearer = {**RID, "Authorization": f"Bearer {key}"}
    context = {"context": {"targetingKey": "u-1", "company": {"plan": "pro"}}}
    flag = datasets.w1_flags()[0]["key"]
    _same(edges, "POST", "/ofrep/v1/evaluate/flags", headers=bearer, json=context)
    _same(edges, "POST", f"/ofrep/v1/evaluate/flags/{flag}", headers=bearer, json=context)
    _same(edges, "POST", "/ofrep/v1/evaluate/flags/no%20such%20flag", headers=bearer, json=context)
    _same(edges, "POST", "/ofrep/v1/evaluate/flags", headers=bearer, content=b"{not json")
    _same(edges, "POST", "/ofrep/v1/evaluate/flags", headers={**bearer, "Origin": "https://a.example"}, json={})
    _same(edges, "GET", "/ofrep/v1/evaluate/flags", headers=bearer)


def test_routed_paths_answer_as_over_asgi(edges: Edges) -> None:
    _same(edges, "GET", "/health", headers=RID)
    _same(edges, "GET", "/ready", headers=RID)
    _same(edges, "GET", "/no/such/route", headers=RID)
    _same(edges, "POST", "/health", headers=RID)
    _same(edges, "GET", "/features", headers={**RID, "Authorization": f"Bearer {edges.server_key}"})
    _same(edges, "GET", "/ofrep/v1/configuration", headers={**RID, "Authorization": f"Bearer {edges.client_key}"})
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    assert _same(edges, "OPTIONS", "/ofrep/v1/evaluate/flags", headers=preflight).status_code == 200
    big = b"{" + b" " * (2 << 20) + b"}"
    bearer = {**RID, "Authorization": f"Bearer {edges.client_key}"}
    _same(edges, "POST", "/features/events", headers=bearer, content=big)


def test_event_streams_stream_over_rsgi(edges: Edges) -> None:
    url = f"/features/stream?publishableKey={edges.client_key}"
    lines: dict[str, list[str]] = {}
    heads: dict[str, list[tuple[str, str]]] = {}
    for name, client in (("asgi", edges.asgi), ("rsgi", edges.rsgi)):
        with client.stream("GET", url, headers=RID) as r:
            assert r.status_code == 200
            heads[name] = _headers(r)
            it = r.iter_lines()
            lines[name] = [next(it) for _ in range(6)]
    assert heads["rsgi"] == heads["asgi"]
    assert lines["rsgi"] == lines["asgi"]
    assert lines["rsgi"][3] == "event: flagStateVersion"
