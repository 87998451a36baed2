"""Helpers for the DevCycle management API tests: a project with environments, features and
the environment snapshots the feature model builds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

import evaluator
from control_plane.features_snapshot import environment_features
from control_plane.snapshots import build_environment_document
from control_plane.store import Store
from tests.control_plane.conftest import Api, User

ALL = {"operator": "and", "filters": [{"type": "all"}]}
# A Reflag context node inside a DevCycle audience group (dialects mix in one tree).
PRO_NODE = {"type": "context", "field": "user.plan", "operator": "IS", "values": ["pro"]}
PRO = {"operator": "and", "filters": [PRO_NODE]}
BOOL_FEATURE: dict[str, Any] = {
    "key": "new-dash",
    "name": "New dashboard",
    "variables": [{"key": "show-new-dashboard", "type": "Boolean"}],
    "variations": [
        {"key": "on", "name": "On", "variables": {"show-new-dashboard": True}},
        {"key": "off", "name": "Off", "variables": {"show-new-dashboard": False}},
    ],
}


def target(audience: Any = None, variation: str = "on", **extra: Any) -> dict[str, Any]:
    return {
        "audience": {"name": "Everyone", "filters": audience or ALL},
        "distribution": [{"_variation": variation, "percentage": 1}],
        **extra,
    }


def fields(response: Any) -> list[str]:
    """The fields named by a DevCycle error's details (DevCycle's shape, DESIGN.md 5b)."""
    body = response.json()
    assert body["statusCode"] == response.status_code, body
    return [d["field"] for d in body["details"]]


@dataclass
class Project:
    api: Api
    owner: User
    organisation: str = "acme"
    key: str = "app"
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"/v1/projects/{self.key}"

    @property
    def h(self) -> dict[str, str]:
        return self.owner.auth

    def store(self) -> Store:
        store: Store = self.api.client.app.state.services.store  # type: ignore[attr-defined]
        return store

    def post(self, path: str, body: Any, user: User | None = None) -> Any:
        return self.api.client.post(self.url + path, json=body, headers=(user or self.owner).auth)

    def patch(self, path: str, body: Any, user: User | None = None) -> Any:
        return self.api.client.patch(self.url + path, json=body, headers=(user or self.owner).auth)

    def get(self, path: str = "", *, user: User | None = None, **params: Any) -> Any:
        return self.api.client.get(self.url + path, params=params, headers=(user or self.owner).auth)

    def delete(self, path: str, user: User | None = None, **params: Any) -> Any:
        return self.api.client.delete(self.url + path, params=params, headers=(user or self.owner).auth)

    def environment(self, key: str = "development", type_: str = "development") -> dict[str, Any]:
        r = self.post("/environments", {"name": key.title(), "key": key, "type": type_})
        assert r.status_code == 201, r.text
        env: dict[str, Any] = r.json()
        self.environments[key] = env
        return env

    def feature(self, body: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
        r = self.post("/features", {**(body or BOOL_FEATURE), **overrides})
        assert r.status_code == 201, r.text
        created: dict[str, Any] = r.json()
        return created

    def configure(self, feature: str, environment: str, body: dict[str, Any], user: User | None = None) -> Any:
        return self.api.client.patch(
            f"{self.url}/features/{feature}/configurations",
            params={"environment": environment},
            json=body,
            headers=(user or self.owner).auth,
        )

    def env_id(self, key: str) -> str:
        return str(self.environments[key]["_id"])

    def snapshot(self, environment: str = "development", now_ms: float | None = None) -> list[dict[str, Any]]:
        with self.store().read() as db:
            return environment_features(db, self.env_id(environment), now_ms=now_ms)

    def by_key(self, environment: str = "development") -> dict[str, dict[str, Any]]:
        return {f["key"]: f for f in self.snapshot(environment)}

    def document(self, environment: str = "development") -> dict[str, Any]:
        """The environment's whole snapshot document, as published."""
        with self.store().read() as db:
            return build_environment_document(db, self.env_id(environment))

    def compiled(self, environment: str = "development") -> evaluator.Snapshot:
        return evaluator.Snapshot(orjson.dumps(self.document(environment)))

    def evaluate(
        self, context: dict[str, Any], environment: str = "development", now_ms: float | None = None
    ) -> dict[str, Any]:
        """``/features/evaluated`` for one context, from the compiled environment snapshot."""
        out: dict[str, Any] = orjson.loads(self.compiled(environment).evaluate_all(context, now_ms=now_ms))
        return out


def project(api: Api, organisation: str = "acme", key: str = "app", owner: User | None = None) -> Project:
    """An organisation owned by a new user, with a DevCycle project and a development environment."""
    if owner is None:
        owner = api.signup()
        api.organisation(owner, organisation)
    r = api.client.post(
        "/v1/projects", json={"name": key.title(), "key": key}, headers={**owner.auth, "x-organisation": organisation}
    )
    assert r.status_code == 201, r.text
    p = Project(api, owner, organisation, key)
    p.environment()
    return p


def member(p: Project, role: str) -> User:
    user = p.api.signup()
    p.api.member(p.owner, p.organisation, user, role)
    return user
