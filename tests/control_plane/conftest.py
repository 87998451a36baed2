"""Fixtures for control-plane tests: a real app on a temp data dir, and signed-up users."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from control_plane.app import create_app
from control_plane.settings import Settings
from tests.support.error_shapes import error_of, shape_of

_counter = itertools.count()


@dataclass
class User:
    name: str
    email: str
    token: str
    user_id: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def org(self, organisation: str, application: str | None = None) -> dict[str, str]:
        """Auth plus the Airborne context headers."""
        headers = {**self.auth, "x-organisation": organisation}
        if application:
            headers["x-application"] = application
        return headers


class Api:
    """A TestClient over a fresh control plane, with helpers to set up people and projects."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def signup(self, name: str | None = None) -> User:
        name = name or f"user{next(_counter)}"
        email = f"{name}@example.com"
        r = self.client.post(
            "/users/create",
            json={"name": name, "password": "correct-horse", "first_name": "F", "last_name": "L", "email": email},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        return User(name, email, body["user_token"]["access_token"], body["user_id"])

    def organisation(self, owner: User, name: str) -> None:
        r = self.client.post("/organisations/create", json={"name": name}, headers=owner.auth)
        assert r.status_code == 200, r.text

    def application(self, owner: User, organisation: str, application: str) -> None:
        r = self.client.post(
            "/organisations/applications/create", json={"application": application}, headers=owner.org(organisation)
        )
        assert r.status_code == 200, r.text

    def member(self, admin: User, organisation: str, user: User, access: str) -> None:
        r = self.client.post(
            "/organisation/user/create", json={"user": user.email, "access": access}, headers=admin.org(organisation)
        )
        assert r.status_code == 200, r.text

    def api_key(self, owner: User, organisation: str, scope: str) -> str:
        r = self.client.post(
            f"/organisations/{organisation}/api-keys",
            json={"name": f"k{next(_counter)}", "scope": scope},
            headers=owner.auth,
        )
        assert r.status_code == 201, r.text
        key: str = r.json()["key"]
        return key


def assert_error(response: Any, status: int, code: str, shape: str | None = None) -> dict[str, Any]:
    """The response is a DESIGN.md error body (the envelope or, on Airborne routes, Airborne's
    shape; ``shape`` pins which) with this status and code."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    if shape is not None:
        assert shape_of(body) == shape, body
    err = error_of(body)
    assert err["code"] == code
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["details"], list)
    assert err["request_id"] == response.headers["x-request-id"]
    return body


@pytest.fixture
def api(tmp_path: Path, database_url: str | None) -> Iterator[Api]:
    """A control plane on each store (SQLite, then PostgreSQL: ``database_url``)."""
    app = create_app(Settings(data_dir=tmp_path, jwt_secret="test-secret-" + "x" * 32, database_url=database_url))
    with TestClient(app) as client:
        yield Api(client)
