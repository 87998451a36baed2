"""The scope matrix of /api/v1: every key kind (and every other credential) by every route of the
key API. Exactly the allowed kinds pass; any other credential that is valid gets 403 with the
envelope; a missing, unknown or revoked key gets 401. The route list comes from /openapi.json
(operations marked ``x-key-scopes``): a key-API route without an entry here fails."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from control_plane.app import ROUTERS, VERSION
from control_plane.openapi import document
from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.routes.sytwm.support import Site, answer, bearer, create_key, site

_dedup = itertools.count()


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    success: int
    allowed: frozenset[str]
    body: Any = None


ROUTES = [
    Route("GET", "/api/v1/posts", 200, frozenset({"submit", "read"})),
    Route("GET", "/api/v1/posts/default", 200, frozenset({"submit", "read"})),
    Route("POST", "/api/v1/feedback", 201, frozenset({"submit"}), answer()),
    Route("GET", "/api/v1/feedback", 200, frozenset({"read"})),
    Route("POST", "/api/v1/telemetry", 201, frozenset({"submit"}), {"event_type": "page_hit"}),
    Route("GET", "/api/v1/telemetry", 200, frozenset({"read"})),
]
# Credentials that are valid but not for this API, and ones that are not valid at all.
FORBIDDEN_CALLERS = ("fe:read", "fe:write", "fe:submit", "fe:admin", "jwt:owner")
UNAUTHENTICATED = ("none", "revoked", "unknown")
CALLERS = ("sytwm:submit", "sytwm:read", *FORBIDDEN_CALLERS, *UNAUTHENTICATED)
TEMPLATE = {"/api/v1/posts/{slug}": "/api/v1/posts/default"}


@dataclass
class World:
    api: Api
    site: Site
    credentials: dict[str, dict[str, str]]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from control_plane.app import create_app
    from control_plane.settings import Settings

    data: Path = tmp_path_factory.mktemp("scopes")
    app = create_app(Settings(data_dir=data, jwt_secret="s" * 40, api_v1_rate_per_key=0, api_v1_rate_per_address=0))
    with TestClient(app) as client:
        api = Api(client)
        s = site(api)
        revoked = create_key(api, s.owner, s.org, "submit")
        assert client.delete(f"/admin/api-keys/{revoked['id']}", headers=s.h).status_code == 200
        credentials = {
            "sytwm:submit": bearer(s.submit),
            "sytwm:read": {"X-API-Key": s.read},
            **{
                f"fe:{scope}": bearer(api.api_key(s.owner, s.org, scope))
                for scope in ("read", "write", "submit", "admin")
            },
            "jwt:owner": s.owner.auth,
            "none": {},
            "revoked": bearer(revoked["key"]),
            "unknown": bearer("sytwm_sk_" + "A" * 43),
        }
        yield World(api, s, credentials)


def test_every_key_api_route_is_in_the_matrix() -> None:
    openapi = document(ROUTERS, "flagedge control plane", VERSION)
    served = {
        (method.upper(), TEMPLATE.get(path, path)): set(op["x-key-scopes"])
        for path, item in openapi["paths"].items()
        for method, op in item.items()
        if "x-key-scopes" in op
    }
    assert served == {(r.method, r.path): set(r.allowed) for r in ROUTES}


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_scope_matrix(world: World, route: Route, caller: str) -> None:
    body = route.body
    if isinstance(body, dict) and "answers" in body:
        body = {**body, "client_dedup_id": f"d{next(_dedup)}"}
    r = world.api.client.request(route.method, route.path, json=body, headers=world.credentials[caller])
    if caller in UNAUTHENTICATED:
        assert_error(r, 401, "unauthorized")
    elif caller.startswith("sytwm:") and caller.removeprefix("sytwm:") in route.allowed:
        assert r.status_code == route.success, r.text
        if route.success == 201:
            assert r.json().get("replayed", False) is False
    else:
        assert_error(r, 403, "forbidden")
