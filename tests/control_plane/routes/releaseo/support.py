"""Helpers shared by the Releaseo widget and segment route tests."""

from __future__ import annotations

from typing import Any, cast

from starlette.applications import Starlette

from control_plane.http import Services
from tests.control_plane.conftest import Api, User

SEGMENTS = "/projects/{}/segments"


PRO = {
    "type": "group",
    "operator": "and",
    "filters": [{"type": "context", "field": "user.plan", "operator": "IS", "values": ["pro"]}],
}


def services(api: Api) -> Services:
    return cast(Services, cast(Starlette, api.client.app).state.services)


def setup(api: Api, org: str = "acme", project: str = "app") -> User:
    owner = api.signup()
    api.organisation(owner, org)
    api.application(owner, org, project)
    return owner


def member(api: Api, owner: User, role: str, org: str = "acme") -> User:
    user = api.signup()
    api.member(owner, org, user, role)
    return user


def create_segment(
    api: Api, user: User, name: str, definition: Any = None, project: str = "app", headers: dict[str, str] | None = None
) -> Any:
    return api.client.post(
        SEGMENTS.format(project),
        json={"name": name, "definition": definition or PRO},
        headers={**user.auth, **(headers or {})},
    )


def segment_id(api: Api, user: User, name: str, definition: Any = None, project: str = "app") -> str:
    r = create_segment(api, user, name, definition, project)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def detail_fields(response: Any) -> list[str]:
    return [d["field"] for d in response.json()["error"]["details"]]
