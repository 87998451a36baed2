"""Authorization matrix over every write route of ``/openapi.json``.

Two organisations: ``acme`` (an owner, admin, write and read member, and API keys of every scope
made by the owner) and ``globex`` (its own owner and resources). For each write route there is a
realistic request (a valid body, existing path resources built fresh for every case) and for each
caller the exact outcome is asserted:

* the route's role or more: the route's success status (and an audit entry);
* an acme member or key whose role is too low: 403 (and nothing written);
* no credentials, or a revoked key: 401;
* the globex owner on acme's resources, or a ``submit`` key (no admin-API access): 404 with the same
  code, message and details as a request for a resource that does not exist at all; the globex
  owner doing the same on globex's own resources succeeds (so the 404 is not a broken request);
* the globex owner using acme's resource ids under globex's own project or organisation: 404, the
  same as for ids that exist nowhere.

The route list comes from the served OpenAPI document: a write route without a matrix entry fails.
The whole matrix runs on each store (SQLite, then PostgreSQL: ``module_database_url``).
Routes of the key API (``x-key-scopes`` in the document: /api/v1, opened by its own keys only) are
not admin routes; tests/control_plane/routes/sytwm/test_scopes.py is their matrix. Its keys are
callers here too: a ``sytwm_`` key of acme opens no admin route (403 on every one).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from control_plane.app import ROUTERS, VERSION, create_app
from control_plane.authz import RANK
from control_plane.openapi import document
from control_plane.settings import Settings
from tests.control_plane.conftest import Api, User, assert_error
from tests.support.error_shapes import error_of

WRITE_METHODS = ("post", "put", "patch", "delete")
USER_ROLES = ("owner", "admin", "write", "read")
KEY_SCOPES = ("read", "write", "submit", "admin")
# The effective role of each acme caller: keys are made by the owner, so an admin key acts as owner;
# a submit key has no admin-API access at all (its organisation's resources are invisible to it).
ROLE_OF: dict[str, str | None] = {
    "owner": "owner",
    "admin": "admin",
    "write": "write",
    "read": "read",
    "key:read": "read",
    "key:write": "write",
    "key:submit": None,
    "key:admin": "owner",
}
SYTWM_CALLERS = ("sytwm:submit", "sytwm:read")
CALLERS = (*USER_ROLES, *(f"key:{s}" for s in KEY_SCOPES), *SYTWM_CALLERS, "key:revoked", "globex", "anonymous")
OWN = "globex:own"
FOREIGN = "globex:foreign-ids"
_ids = itertools.count(1)


def uid(prefix: str) -> str:
    return f"{prefix}{next(_ids)}"


def write_routes(openapi: dict[str, Any]) -> list[tuple[str, str]]:
    """``(METHOD, path)`` of every authenticated write operation of the admin API in an OpenAPI document."""
    return sorted(
        (method.upper(), path)
        for path, item in openapi["paths"].items()
        for method, op in item.items()
        if method in WRITE_METHODS and op.get("security") and "x-key-scopes" not in op
    )


# ---------------------------------------------------------------------------------------------
# Requests and scenes


@dataclass
class Req:
    """A request template: ``{slot}`` in the path, header values and query values is filled from ``slots``."""

    method: str
    path: str
    slots: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None

    def with_slots(self, **values: str) -> Req:
        return Req(self.method, self.path, {**self.slots, **values}, self.headers, self.params, self.body)

    def missing(self, names: tuple[str, ...] | None = None) -> Req:
        """The same request naming resources that exist nowhere (all slots, or ``names``)."""
        return self.with_slots(**{k: f"missing-{k}-x" for k in (names or tuple(self.slots))})

    def send(self, client: TestClient, auth: dict[str, str]) -> Any:
        fill: Callable[[str], str] = lambda s: s.format(**self.slots)  # noqa: E731
        headers = {k: fill(v) for k, v in self.headers.items()}
        params = {k: fill(v) for k, v in self.params.items()}
        kwargs: dict[str, Any] = {"headers": {**headers, **auth}, "params": params}
        if self.body is not None:
            kwargs["json"] = self.body
        return client.request(self.method, fill(self.path), **kwargs)


class World:
    """The two organisations, their people and the acme API keys (shared by every case)."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.client = api.client
        self.users = {role: api.signup(uid(f"acme-{role}-")) for role in USER_ROLES}
        self.globex = api.signup(uid("globex-owner-"))
        self.spare = api.signup(uid("spare-"))
        api.organisation(self.users["owner"], "acme")
        api.organisation(self.globex, "globex")
        self._keys: dict[tuple[str, str], str] = {}
        self.add_members("acme")
        self.revoked = api.api_key(self.owner, "acme", "write")
        key_id = self.client.get("/organisations/acme/api-keys", headers=self.owner.auth).json()[-1]["id"]
        r = self.client.delete(f"/organisations/acme/api-keys/{key_id}", headers=self.owner.auth)
        assert r.status_code == 200, r.text
        # globex's own resources, with the same shapes as acme's.
        Scene(self, "globex", self.globex).devcycle_project()

    @property
    def owner(self) -> User:
        return self.users["owner"]

    def add_members(self, org: str) -> None:
        for role in ("admin", "write", "read"):
            self.api.member(self.owner, org, self.users[role], role)

    def fresh_org(self, owner: User) -> str:
        """A new organisation of ``owner``; acme's owner also adds the acme members with their roles."""
        name = uid("org-")
        self.api.organisation(owner, name)
        if owner is self.owner:
            self.add_members(name)
        return name

    def key(self, org: str, scope: str) -> str:
        if (org, scope) not in self._keys:
            self._keys[(org, scope)] = self.api.api_key(self.owner, org, scope)
        return self._keys[(org, scope)]

    def sytwm_key(self, org: str, scope: str) -> str:
        """A /api/v1 key of ``org`` (issued at /admin/api-keys by acme's owner)."""
        if (org, f"sytwm:{scope}") not in self._keys:
            h = {**self.owner.auth, "x-organisation": org}
            r = self.client.post("/admin/api-keys", json={"name": uid("sk"), "scope": scope}, headers=h)
            assert r.status_code == 201, r.text
            self._keys[(org, f"sytwm:{scope}")] = r.json()["key"]
        return self._keys[(org, f"sytwm:{scope}")]

    def auth(self, caller: str, org: str) -> dict[str, str]:
        if caller in USER_ROLES:
            return self.users[caller].auth
        if caller == "key:revoked":
            return {"Authorization": f"Bearer {self.revoked}"}
        if caller.startswith("key:"):
            return {"Authorization": f"Bearer {self.key(org, caller[4:])}"}
        if caller in SYTWM_CALLERS:
            return {"Authorization": f"Bearer {self.sytwm_key(org, caller.removeprefix('sytwm:'))}"}
        if caller in ("globex", OWN, FOREIGN):
            return self.globex.auth
        assert caller == "anonymous", caller
        return {}

    def audit_count(self) -> int:
        store = self.client.app.state.services.store  # type: ignore[attr-defined]
        with store.read() as db:
            return int(db.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0])


ALL_FILTER = {"operator": "and", "filters": [{"type": "all"}]}
DE_FILTER = {
    "operator": "and",
    "filters": [{"type": "user", "subType": "country", "comparator": "=", "values": ["DE"]}],
}
PRO_DEFINITION = {"type": "context", "field": "company.plan", "operator": "IS", "values": ["pro"]}


def bool_feature(key: str) -> dict[str, Any]:
    return {
        "key": key,
        "name": key.title(),
        "variables": [{"key": f"{key}-on", "type": "Boolean"}],
        "variations": [
            {"key": "on", "name": "On", "variables": {f"{key}-on": True}},
            {"key": "off", "name": "Off", "variables": {f"{key}-on": False}},
        ],
    }


class Scene:
    """Builds resources in one organisation as its owner; every builder asserts it succeeded."""

    def __init__(self, world: World, org: str, owner: User) -> None:
        self.world = world
        self.org = org
        self.owner = owner

    def call(self, method: str, path: str, body: Any = None, **headers: str) -> Any:
        kwargs: dict[str, Any] = {"headers": {**headers, **self.owner.auth}}
        if body is not None:
            kwargs["json"] = body
        r = self.world.client.request(method, path, **kwargs)
        assert r.status_code in (200, 201, 204), r.text
        return r.json() if r.status_code != 204 else None

    # -- DevCycle --------------------------------------------------------------------------------

    def devcycle_project(self) -> dict[str, str]:
        """A project with a development environment: slots ``org``, ``project``, ``environment``."""
        key = uid("p")
        self.call("POST", "/v1/projects", {"name": key.upper(), "key": key}, **{"x-organisation": self.org})
        env = self.environment({"org": self.org, "project": key}, "development")
        return {"org": self.org, "project": key, "environment": env["_id"]}

    def environment(self, s: dict[str, str], key: str) -> dict[str, Any]:
        body = {"name": key.title(), "key": key, "type": "development"}
        env: dict[str, Any] = self.call("POST", f"/v1/projects/{s['project']}/environments", body)
        return env

    def feature(self, s: dict[str, str]) -> dict[str, Any]:
        created: dict[str, Any] = self.call("POST", f"/v1/projects/{s['project']}/features", bool_feature(uid("f")))
        return created

    def dv(self, method: str, path: str, body: Any = None, **slots: str) -> Req:
        return Req(method, "/v1/projects/{project}" + path, slots, {"x-organisation": "{org}"}, body=body)

    # -- Releaseo ----------------------------------------------------------------------------------

    def rel(self, method: str, path: str, body: Any = None, **slots: str) -> Req:
        return Req(method, "/projects/{project}" + path, slots, {"x-organisation": "{org}"}, body=body)

    def segment(self, s: dict[str, str]) -> str:
        body = {"name": uid("seg"), "definition": PRO_DEFINITION}
        seg: dict[str, Any] = self.call("POST", f"/projects/{s['project']}/segments", body)
        return str(seg["id"])

    # -- Airborne ----------------------------------------------------------------------------------

    def app(self) -> dict[str, str]:
        key = uid("a")
        self.call("POST", "/organisations/applications/create", {"application": key}, **{"x-organisation": self.org})
        return {"org": self.org, "project": key}

    def ab(self, method: str, path: str, body: Any = None, **slots: str) -> Req:
        return Req(method, path, slots, {"x-organisation": "{org}", "x-application": "{project}"}, body=body)

    def ab_call(self, s: dict[str, str], method: str, path: str, body: Any = None) -> Any:
        return self.call(method, path, body, **{"x-organisation": s["org"], "x-application": s["project"]})

    def file(self, s: dict[str, str], path: str) -> dict[str, Any]:
        created: dict[str, Any] = self.ab_call(
            s,
            "POST",
            "/file",
            # Size and checksum as Airborne's CLI sends them: releases of verified files go live.
            {
                "file_path": path,
                "url": f"https://cdn.example.com/{path}",
                "tag": "latest",
                "size": 1,
                "checksum": "ab" * 32,
            },
        )
        return created

    def package_app(self) -> dict[str, str]:
        s = self.app()
        self.file(s, "index.js")
        self.file(s, "vendor.js")
        self.ab_call(s, "POST", "/packages", {"index": "index.js", "tag": "latest", "files": ["vendor.js"]})
        return s

    def open_release(self) -> dict[str, str]:
        """An application whose first release is live and whose second one is CREATED (slot ``release``)."""
        s = self.package_app()
        self.ab_call(s, "POST", "/releases", {})
        second = self.ab_call(s, "POST", "/releases", {})
        assert second["experiment"]["status"] == "CREATED"
        return {**s, "release": second["id"]}

    def dimension(self, s: dict[str, str], name: str, **extra: Any) -> None:
        body = {"dimension": name, "description": name, **extra}
        if extra.get("dimension_type") != "cohort":
            body["schema"] = {"type": "string"}
        self.ab_call(s, "POST", "/organisations/applications/dimension/create", body)

    def cohort_app(self, groups: tuple[str, ...] = ()) -> dict[str, str]:
        s = self.app()
        self.dimension(s, "app_version")
        self.dimension(s, "version_cohort", dimension_type="cohort", depends_on="app_version")
        for i, g in enumerate(groups):
            self.ab_call(
                s,
                "POST",
                "/organisations/applications/dimension/version_cohort/cohort/group",
                {"name": g, "members": [f"{i}.0.0"]},
            )
        return {**s, "dimension": "version_cohort"}


# ---------------------------------------------------------------------------------------------
# The matrix: one entry per write route


@dataclass(frozen=True)
class Entry:
    """``needed``: the least role that may call the route (None: any signed-in caller, no organisation
    involved); ``build`` makes the fresh resources and returns the request; ``success`` is its status;
    ``keys_forbidden``: API keys get 403 whatever their scope; ``fresh_org``: the case runs in a new
    organisation (the route destroys or rewires it); ``foreign``: slots holding globally unique ids."""

    needed: str | None
    build: Callable[[Scene], Req]
    success: int
    keys_forbidden: bool = False
    fresh_org: bool = False
    foreign: tuple[str, ...] = ()
    # The route ends the caller's own session (logout, password change): a signed-in caller is a
    # throwaway user, since the world's users keep their tokens for every other case (the route
    # needs no role, so which user calls it does not change what is checked).
    ends_session: bool = False
    # A POST that reads (evaluating a draft): it succeeds without leaving an audit entry.
    writes: bool = True


def _ensure_spare(sc: Scene, member: bool) -> None:
    """The spare user is (not) a member of the scene's organisation, with read access."""
    world, h = sc.world, {**sc.owner.auth, "x-organisation": sc.org}
    members = world.client.get("/organisation/user/list", headers=h).json()["users"]
    is_member = any(u["email"] == world.spare.email for u in members)
    if is_member and not member:
        sc.call("POST", "/organisation/user/remove", {"user": world.spare.email}, **{"x-organisation": sc.org})
    elif member:
        path = "/organisation/user/update" if is_member else "/organisation/user/create"
        sc.call("POST", path, {"user": world.spare.email, "access": "read"}, **{"x-organisation": sc.org})


def _member_req(path: str, body: Callable[[World], dict[str, Any]], member: bool) -> Callable[[Scene], Req]:
    def build(sc: Scene) -> Req:
        _ensure_spare(sc, member)
        return Req("POST", path, {"org": sc.org}, {"x-organisation": "{org}"}, body=body(sc.world))

    return build


def _api_key_req(sc: Scene) -> Req:
    created = sc.call("POST", f"/organisations/{sc.org}/api-keys", {"name": uid("k"), "scope": "read"})
    return Req("DELETE", "/organisations/{org}/api-keys/{key_id}", {"org": sc.org, "key_id": created["id"]})


def _dv_feature(method: str, path: str, body: Any = None) -> Callable[[Scene], Req]:
    def build(sc: Scene) -> Req:
        s = sc.devcycle_project()
        return sc.dv(method, "/features/{feature}" + path, body, **s, feature=sc.feature(s)["_id"])

    return build


def _dv_variation(method: str, body: Any = None) -> Callable[[Scene], Req]:
    def build(sc: Scene) -> Req:
        s = sc.devcycle_project()
        f = sc.feature(s)
        off = next(v["_id"] for v in f["variations"] if v["key"] == "off")
        return sc.dv(method, "/features/{feature}/variations/{variation}", body, **s, feature=f["_id"], variation=off)

    return build


def _dv_variable(method: str, path: str, body: Any = None) -> Callable[[Scene], Req]:
    def build(sc: Scene) -> Req:
        s = sc.devcycle_project()
        v = sc.call("POST", f"/v1/projects/{s['project']}/variables", {"key": uid("v"), "type": "String"})
        return sc.dv(method, "/variables/{variable}" + path, body, **s, variable=v["_id"])

    return build


def _dv_audience(method: str, body: Any = None) -> Callable[[Scene], Req]:
    def build(sc: Scene) -> Req:
        s = sc.devcycle_project()
        a = sc.call(
            "POST",
            f"/v1/projects/{s['project']}/audiences",
            {"name": "Germany", "key": uid("de"), "filters": DE_FILTER},
        )
        return sc.dv(method, "/audiences/{audience}", body, **s, audience=a["_id"])

    return build


def _dv_property(method: str, body: Any = None) -> Callable[[Scene], Req]:
    def build(sc: Scene) -> Req:
        s = sc.devcycle_project()
        key = uid("plan")
        p = sc.call(
            "POST",
            f"/v1/projects/{s['project']}/customProperties",
            {"name": "Plan", "key": key, "type": "String", "propertyKey": key},
        )
        return sc.dv(method, "/customProperties/{property}", body, **s, property=p["_id"])

    return build


def _dv_environment(method: str, path: str, body: Any = None) -> Callable[[Scene], Req]:
    def build(sc: Scene) -> Req:
        s = sc.devcycle_project()
        return sc.dv(method, "/environments/{environment}" + path, body, **s)

    return build


def _invalidate(sc: Scene) -> Req:
    s = sc.devcycle_project()
    env = sc.environment(s, uid("e"))
    server = env["sdkKeys"]["server"][0]["key"]
    s["environment"] = env["_id"]
    return sc.dv("PUT", "/environments/{environment}/keys/{sdk_key}/invalidate", **s, sdk_key=server)


def _invalidate_documented(sc: Scene) -> Req:
    s = sc.devcycle_project()
    env = sc.environment(s, uid("e"))
    s["environment"] = env["_id"]
    return sc.dv(
        "DELETE", "/environments/{environment}/sdk-keys/{sdk_key}", **s, sdk_key=env["sdkKeys"]["server"][0]["key"]
    )


def _dv2_feature(
    method: str, path: str, body: Any = None, complete: bool = False, v1: bool = False
) -> Callable[[Scene], Req]:
    """A request on a fresh feature under /v2 (or /v1 with ``v1``); ``complete`` completes it first."""

    def build(sc: Scene) -> Req:
        s = sc.devcycle_project()
        f = sc.feature(s)
        if complete:
            body_ = {"status": "complete", "staticVariation": "on"}
            sc.call("PATCH", f"/v1/projects/{s['project']}/features/{f['_id']}/status", body_)
        root = "/v1" if v1 else "/v2"
        headers = {"x-organisation": "{org}"}
        return Req(
            method,
            root + "/projects/{project}/features/{feature}" + path,
            {**s, "feature": f["_id"]},
            headers,
            body=body,
        )

    return build


def _jira_unlink(sc: Scene) -> Req:
    s = sc.devcycle_project()
    f = sc.feature(s)
    sc.call("POST", f"/v1/projects/{s['project']}/features/{f['_id']}/integrations/jira/issues", {"issueId": "J-1"})
    return sc.dv("DELETE", "/features/{feature}/integrations/jira/issues/J-1", None, **s, feature=f["_id"])


def _semantic_patch(sc: Scene) -> Req:
    s = sc.devcycle_project()
    a = sc.call(
        "POST", f"/v1/projects/{s['project']}/audiences", {"name": "Germany", "key": uid("de"), "filters": DE_FILTER}
    )
    body = {"instructions": [{"op": "addFilterValues", "action": {"filterIndex": "0", "values": ["AT"]}}]}
    return Req(
        "PATCH",
        "/v1/semantic/projects/{project}/audiences/{audience}",
        {**s, "audience": a["_id"]},
        {"x-organisation": "{org}"},
        body=body,
    )


DYNATRACE_ENV = {"dynatraceEnvironmentId": "dt1", "accessToken": "dt-token-1", "environmentUrl": "https://dt1.live"}


def _dynatrace_delete(sc: Scene) -> Req:
    env_id = uid("dt")
    sc.call(
        "POST",
        "/v1/integrations/dynatrace",
        {**DYNATRACE_ENV, "dynatraceEnvironmentId": env_id},
        **{"x-organisation": sc.org},
    )
    return Req("DELETE", "/v1/integrations/dynatrace/{dt}", {"org": sc.org, "dt": env_id}, {"x-organisation": "{org}"})


def _draft(sc: Scene) -> Req:
    s = sc.devcycle_project()
    f = sc.feature(s)
    target = {"audience": {"filters": DE_FILTER}, "distribution": [{"_variation": "on", "percentage": 1}]}
    body = {
        "context": {"user": {"id": "u1", "country": "DE"}},
        "configuration": {"status": "active", "targets": [target]},
    }
    req = sc.dv("POST", "/features/{feature}/evaluate", body, **s, feature=f["_id"])
    req.params = {"environment": "{environment}"}
    return req


def _configuration(sc: Scene) -> Req:
    s = sc.devcycle_project()
    f = sc.feature(s)
    body = {
        "status": "active",
        "targets": [
            {
                "audience": {"name": "Germany", "filters": DE_FILTER},
                "distribution": [{"_variation": "on", "percentage": 1}],
            }
        ],
    }
    req = sc.dv("PATCH", "/features/{feature}/configurations", body, **s, feature=f["_id"])
    req.params = {"environment": "{environment}"}
    return req


def _segment(method: str, path: str, body: Any = None) -> Callable[[Scene], Req]:
    def build(sc: Scene) -> Req:
        s = sc.devcycle_project()
        return sc.rel(method, "/segments/{segment}" + path, body, **s, segment=sc.segment(s))

    return build


def _project_child(collection: str, body: dict[str, Any], slot: str) -> Callable[[Scene], tuple[dict[str, str], str]]:
    """Makes a fresh project and one ``collection`` resource in it: the slots and its id."""

    def make(sc: Scene) -> tuple[dict[str, str], str]:
        s = sc.devcycle_project()
        created: dict[str, Any] = sc.call("POST", f"/projects/{s['project']}/{collection}", body)
        return s, str(created["id"])

    return make


_make_category = _project_child("feature-request-categories", {"name": "Integrations"}, "category")
_make_request = _project_child("feature-requests", {"title": "Dark mode"}, "request")
_make_item = _project_child("roadmap", {"title": "Public API"}, "item")
_make_entry = _project_child("changelog", {"title": "New look"}, "entry")


def _board_child(
    make: Callable[[Scene], tuple[dict[str, str], str]], collection: str, slot: str, method: str, body: Any = None
) -> Callable[[Scene], Req]:
    def build(sc: Scene) -> Req:
        s, resource_id = make(sc)
        return sc.rel(method, f"/{collection}/{{{slot}}}", body, **s, **{slot: resource_id})

    return build


def _comment_delete(sc: Scene) -> Req:
    """A comment arrives through the edge's intake; the case writes its row as the consumer would."""
    s, request_id = _make_request(sc)
    comment_id = uid("comment")
    store = sc.world.client.app.state.services.store  # type: ignore[attr-defined]
    with store.transaction() as db:
        db.execute(
            "INSERT INTO releaseo_comments (id, request_id, user_id, body, source, created_at)"
            " VALUES (?, ?, 'u-1', 'hi', 'sdk', '2026-01-01T00:00:00.000Z')",
            (comment_id, request_id),
        )
    path = "/feature-requests/{request}/comments/{comment}"
    return sc.rel("DELETE", path, {}, **s, request=request_id, comment=comment_id)


def _roadmap_order(sc: Scene) -> Req:
    s, item_id = _make_item(sc)
    return sc.rel("PUT", "/roadmap/order", {"ids": [item_id]}, **s)


def _widget_delete(sc: Scene) -> Req:
    s = sc.devcycle_project()
    sc.call("PUT", f"/projects/{s['project']}/widget-config", {"settings": {"theme": "dark"}})
    return sc.rel("DELETE", "/widget-config", {}, **s)


def _retag(sc: Scene) -> Req:
    s = sc.app()
    created = sc.file(s, "main.js")
    return sc.ab("PATCH", "/file/{file_key}", {"tag": "stable"}, **s, file_key=created["id"])


def _release_action(action: str, body: dict[str, Any]) -> Callable[[Scene], Req]:
    def build(sc: Scene) -> Req:
        return sc.ab("POST", "/releases/{release}/" + action, body, **sc.open_release())

    return build


def _dimension(method: str, body: Any = None) -> Callable[[Scene], Req]:
    def build(sc: Scene) -> Req:
        s = sc.app()
        sc.dimension(s, "country")
        return sc.ab(method, "/organisations/applications/dimension/{dimension}", body, **s, dimension="country")

    return build


def _cohort(path: str, method: str, body: dict[str, Any], groups: tuple[str, ...] = ()) -> Callable[[Scene], Req]:
    def build(sc: Scene) -> Req:
        return sc.ab(method, "/organisations/applications/dimension/{dimension}" + path, body, **sc.cohort_app(groups))

    return build


def _sytwm_post(sc: Scene, publish: bool = False) -> str:
    """A post of the scene's organisation (published if asked); its slug, unique everywhere."""
    slug = uid("post")
    body = {"slug": slug, "title": "Quick", "definition": SYTWM_DEFINITION}
    sc.call("POST", "/admin/posts", body, **{"x-organisation": sc.org})
    if publish:
        sc.call("POST", f"/admin/posts/{slug}/publish", {}, **{"x-organisation": sc.org})
    return slug


def _sytwm(method: str, path: str, body: Any = None, **slots: str) -> Req:
    return Req(method, path, slots, {"x-organisation": "{org}"}, body=body)


def _sytwm_post_action(path: str, body: Any = None, publish: bool = False) -> Callable[[Scene], Req]:
    def build(sc: Scene) -> Req:
        return _sytwm("POST", "/admin/posts/{slug}" + path, body, org=sc.org, slug=_sytwm_post(sc, publish))

    return build


def _sytwm_key_req(sc: Scene) -> Req:
    created = sc.call("POST", "/admin/api-keys", {"name": uid("k"), "scope": "read"}, **{"x-organisation": sc.org})
    return _sytwm("DELETE", "/admin/api-keys/{key_id}", org=sc.org, key_id=created["id"])


def _sytwm_feedback(action: str) -> Callable[[Scene], Req]:
    def build(sc: Scene) -> Req:
        slug = _sytwm_post(sc, publish=True)
        key = sc.call("POST", "/admin/api-keys", {"name": uid("k"), "scope": "submit"}, **{"x-organisation": sc.org})
        body = {"post_slug": slug, "answers": [{"step_id": "tried", "answer": True}]}
        r = sc.world.client.post("/api/v1/feedback", json=body, headers={"Authorization": f"Bearer {key['key']}"})
        assert r.status_code == 201, r.text
        return _sytwm("POST", "/admin/feedback/{feedback_id}/" + action, {}, org=sc.org, feedback_id=r.json()["id"])

    return build


SYTWM_DEFINITION = {"steps": [{"id": "tried", "label": "Did you try it?", "kind": "yes_no"}]}
D = "/organisations/applications/dimension"
CHECKPOINT = {"name": "modern", "value": "2.0.0", "comparator": "semver_ge"}
GROUP = {"name": "beta", "members": ["1.2.3"]}
PRIORITY = {"priority_map": {"g1": 0}}
FILE = {"file_path": "main.js", "url": "https://cdn.example.com/main.js", "tag": "latest"}
TARGET_ALL = {"audience": {"filters": ALL_FILTER}, "distribution": [{"_variation": "on", "percentage": 1}]}

WORKFLOW = {"featureApprovalWorkflow": {"enabled": True, "allowPublisherBypass": True, "defaultReviewers": []}}


def _change_request(action: str, state: str, body: Any = None) -> Callable[[Scene], Req]:
    """A change request in ``state``, written by the spare user (a writer here, and none of the
    callers: author-or-publisher routes then follow the caller's role alone)."""

    def build(sc: Scene) -> Req:
        s = sc.devcycle_project()
        p = s["project"]
        sc.call("PATCH", f"/v1/projects/{p}/settings/protected", {"settings": WORKFLOW})
        f = sc.feature(s)["_id"]
        _ensure_spare(sc, True)
        sc.call(
            "POST",
            "/organisation/user/update",
            {"user": sc.world.spare.email, "access": "write"},
            **{"x-organisation": sc.org},
        )
        base = f"/v2/projects/{p}/features/{f}/change-requests"
        proposal = {
            "path": f"/v1/projects/{p}/features/{f}/configurations?environment=development",
            "method": "PATCH",
            "body": {"status": "active"},
        }
        r = sc.world.client.post(base, json=proposal, headers=sc.world.spare.auth)
        assert r.status_code == 201, r.text
        cr = r.json()["_id"]
        if state in ("pending", "approved"):
            sc.call("PATCH", f"{base}/{cr}/submit", {"description": "d", "reviewers": [sc.owner.user_id]})
        if state == "approved":
            sc.call("PATCH", f"{base}/{cr}/review", {"action": "approved", "comment": "ok"})
        sent = {"description": "d", "reviewers": [sc.owner.user_id]} if action == "submit" else body
        return Req(
            "PATCH",
            "/v2/projects/{project}/features/{feature}/change-requests/{id}/" + action,
            {**s, "feature": f, "id": cr},
            {"x-organisation": "{org}"},
            body=sent,
        )

    return build


def _webhook(method: str, body: Any = None) -> Callable[[Scene], Req]:
    def build(sc: Scene) -> Req:
        s = sc.devcycle_project()
        hook = sc.call(
            "POST",
            f"/v1/projects/{s['project']}/webhooks",
            {"name": "h", "url": "https://hooks.example.com/x", "events": ["createdFeature"]},
            **{"x-organisation": sc.org},
        )
        return sc.dv(method, "/webhooks/{id}", body, **s, id=hook["_id"])

    return build


def _metric_body() -> dict[str, str]:
    return {
        "name": "M",
        "key": uid("m"),
        "event": "purchase",
        "dimension": "COUNT_PER_UNIQUE_USER",
        "optimize": "increase",
    }


def _metric(method: str, body: Any = None) -> Callable[[Scene], Req]:
    def build(sc: Scene) -> Req:
        s = sc.devcycle_project()
        m = sc.call("POST", f"/v1/projects/{s['project']}/metrics", _metric_body(), **{"x-organisation": sc.org})
        return sc.dv(method, "/metrics/{key}", body, **s, key=m["_id"])

    return build


def _association(method: str) -> Callable[[Scene], Req]:
    """A metric and a feature (associated first when the request removes the association)."""

    def build(sc: Scene) -> Req:
        s = sc.devcycle_project()
        m = sc.call("POST", f"/v1/projects/{s['project']}/metrics", _metric_body(), **{"x-organisation": sc.org})
        pair = {"metric": m["_id"], "feature": sc.feature(s)["_id"]}
        if method == "DELETE":
            sc.call("POST", f"/v1/projects/{s['project']}/metric-associations", pair, **{"x-organisation": sc.org})
        return sc.dv(method, "/metric-associations", pair, **s)

    return build


def _override(method: str) -> Callable[[Scene], Req]:
    """The caller's override of a fresh feature in development (self-targeting needs read access)."""

    def build(sc: Scene) -> Req:
        s = sc.devcycle_project()
        slots = {**s, "feature": sc.feature(s)["_id"]}
        path, org = "/v1/projects/{project}/features/{feature}/overrides/current", {"x-organisation": "{org}"}
        if method == "PUT":
            return Req("PUT", path, slots, org, body={"environment": "development", "variation": "on"})
        return Req("DELETE", path, slots, org, params={"environment": "development"})

    return build


def _proposal(sc: Scene) -> Req:
    s = sc.devcycle_project()
    p = s["project"]
    sc.call("PATCH", f"/v1/projects/{p}/settings/protected", {"settings": WORKFLOW})
    f = sc.feature(s)["_id"]
    body = {
        "path": f"/v1/projects/{p}/features/{f}/configurations?environment=development",
        "method": "PATCH",
        "body": {"status": "active"},
    }
    return Req(
        "POST",
        "/v2/projects/{project}/features/{feature}/change-requests",
        {**s, "feature": f},
        {"x-organisation": "{org}"},
        body=body,
    )


MATRIX: dict[tuple[str, str], Entry] = {
    # -- the caller's own sessions --------------------------------------------------------------------
    ("POST", "/users/logout"): Entry(
        None, lambda sc: Req("POST", "/users/logout", {}), 204, keys_forbidden=True, ends_session=True
    ),
    ("POST", "/users/password"): Entry(
        None,
        lambda sc: Req(
            "POST",
            "/users/password",
            {},
            body={"current_password": "correct-horse", "new_password": "correct-horse-2"},
        ),
        200,
        keys_forbidden=True,
        ends_session=True,
    ),
    # -- organisations, members, API keys -----------------------------------------------------------
    ("POST", "/organisations/create"): Entry(
        None, lambda sc: Req("POST", "/organisations/create", {}, body={"name": uid("neworg")}), 200, True
    ),
    ("POST", "/organisations/request"): Entry(
        None,
        lambda sc: Req(
            "POST",
            "/organisations/request",
            {},
            body={"organisation_name": "Initech", "name": "Peter", "email": "peter@initech.example"},
        ),
        200,
    ),
    ("DELETE", "/organisations/{organisation_name}"): Entry(
        "admin", lambda sc: Req("DELETE", "/organisations/{org}", {"org": sc.org}), 200, fresh_org=True
    ),
    ("POST", "/organisations/applications/create"): Entry(
        "admin",
        lambda sc: Req(
            "POST",
            "/organisations/applications/create",
            {"org": sc.org},
            {"x-organisation": "{org}"},
            body={"application": uid("app")},
        ),
        200,
    ),
    ("POST", "/organisation/user/create"): Entry(
        "admin",
        _member_req("/organisation/user/create", lambda w: {"user": w.spare.email, "access": "write"}, False),
        200,
    ),
    ("POST", "/organisation/user/update"): Entry(
        "admin",
        _member_req("/organisation/user/update", lambda w: {"user": w.spare.email, "access": "write"}, True),
        200,
    ),
    ("POST", "/organisation/user/remove"): Entry(
        "admin", _member_req("/organisation/user/remove", lambda w: {"user": w.spare.email}, True), 200
    ),
    ("POST", "/organisations/{organisation_name}/api-keys"): Entry(
        "admin",
        lambda sc: Req("POST", "/organisations/{org}/api-keys", {"org": sc.org}, body={"name": "ci", "scope": "read"}),
        201,
        keys_forbidden=True,
    ),
    ("DELETE", "/organisations/{organisation_name}/api-keys/{key_id}"): Entry(
        "admin", _api_key_req, 200, foreign=("key_id",)
    ),
    # -- shareyourthoughtswith.me dashboard (JWT only: every API key gets 403) ---------------------------
    ("POST", "/admin/api-keys"): Entry(
        "admin",
        lambda sc: _sytwm("POST", "/admin/api-keys", {"name": "site", "scope": "submit"}, org=sc.org),
        201,
        keys_forbidden=True,
    ),
    ("DELETE", "/admin/api-keys/{key_id}"): Entry("admin", _sytwm_key_req, 200, True, foreign=("key_id",)),
    ("POST", "/admin/posts"): Entry(
        "write",
        lambda sc: _sytwm(
            "POST", "/admin/posts", {"slug": uid("p"), "title": "T", "definition": SYTWM_DEFINITION}, org=sc.org
        ),
        201,
        keys_forbidden=True,
    ),
    ("POST", "/admin/posts/{slug}/versions"): Entry(
        "write", _sytwm_post_action("/versions", {"definition": SYTWM_DEFINITION}), 201, True, foreign=("slug",)
    ),
    ("POST", "/admin/posts/{slug}/publish"): Entry(
        "write", _sytwm_post_action("/publish", {}), 200, True, foreign=("slug",)
    ),
    ("POST", "/admin/posts/{slug}/unpublish"): Entry(
        "write", _sytwm_post_action("/unpublish", {}, publish=True), 200, True, foreign=("slug",)
    ),
    ("POST", "/admin/feedback/{feedback_id}/hide"): Entry(
        "write", _sytwm_feedback("hide"), 200, True, foreign=("feedback_id",)
    ),
    ("POST", "/admin/feedback/{feedback_id}/unhide"): Entry(
        "write", _sytwm_feedback("unhide"), 200, True, foreign=("feedback_id",)
    ),
    # -- Releaseo -------------------------------------------------------------------------------------
    ("PUT", "/projects/{projectId}/widget-config"): Entry(
        "write",
        lambda sc: sc.rel("PUT", "/widget-config", {"settings": {"theme": "dark"}}, **sc.devcycle_project()),
        201,
    ),
    ("DELETE", "/projects/{projectId}/widget-config"): Entry("admin", _widget_delete, 200),
    ("POST", "/projects/{projectId}/segments"): Entry(
        "write",
        lambda sc: sc.rel(
            "POST", "/segments", {"name": "Pro companies", "definition": PRO_DEFINITION}, **sc.devcycle_project()
        ),
        201,
    ),
    ("PATCH", "/projects/{projectId}/segments/{id}"): Entry(
        "write", _segment("PATCH", "", {"name": "Renamed"}), 200, foreign=("segment",)
    ),
    ("DELETE", "/projects/{projectId}/segments/{id}"): Entry(
        "admin", _segment("DELETE", "", {}), 200, foreign=("segment",)
    ),
    ("POST", "/projects/{projectId}/segments/{id}/publish"): Entry(
        "write", _segment("POST", "/publish", {}), 200, foreign=("segment",)
    ),
    ("POST", "/projects/{projectId}/feature-request-categories"): Entry(
        "write",
        lambda sc: sc.rel("POST", "/feature-request-categories", {"name": uid("cat")}, **sc.devcycle_project()),
        201,
    ),
    ("PATCH", "/projects/{projectId}/feature-request-categories/{id}"): Entry(
        "write",
        _board_child(_make_category, "feature-request-categories", "category", "PATCH", {"position": 2}),
        200,
        foreign=("category",),
    ),
    ("DELETE", "/projects/{projectId}/feature-request-categories/{id}"): Entry(
        "admin",
        _board_child(_make_category, "feature-request-categories", "category", "DELETE", {}),
        200,
        foreign=("category",),
    ),
    ("POST", "/projects/{projectId}/feature-requests"): Entry(
        "write", lambda sc: sc.rel("POST", "/feature-requests", {"title": "Export"}, **sc.devcycle_project()), 201
    ),
    ("PATCH", "/projects/{projectId}/feature-requests/{id}"): Entry(
        "write",
        _board_child(_make_request, "feature-requests", "request", "PATCH", {"reviewStatus": "rejected"}),
        200,
        foreign=("request",),
    ),
    ("DELETE", "/projects/{projectId}/feature-requests/{id}"): Entry(
        "write", _board_child(_make_request, "feature-requests", "request", "DELETE", {}), 200, foreign=("request",)
    ),
    ("DELETE", "/projects/{projectId}/feature-requests/{id}/comments/{commentId}"): Entry(
        "write", _comment_delete, 200, foreign=("request", "comment")
    ),
    ("POST", "/projects/{projectId}/roadmap"): Entry(
        "write", lambda sc: sc.rel("POST", "/roadmap", {"title": "Public API"}, **sc.devcycle_project()), 201
    ),
    ("PUT", "/projects/{projectId}/roadmap/order"): Entry("write", _roadmap_order, 200),
    ("PATCH", "/projects/{projectId}/roadmap/{id}"): Entry(
        "write", _board_child(_make_item, "roadmap", "item", "PATCH", {"status": "done"}), 200, foreign=("item",)
    ),
    ("DELETE", "/projects/{projectId}/roadmap/{id}"): Entry(
        "write", _board_child(_make_item, "roadmap", "item", "DELETE", {}), 200, foreign=("item",)
    ),
    ("POST", "/projects/{projectId}/changelog"): Entry(
        "write", lambda sc: sc.rel("POST", "/changelog", {"title": "New look"}, **sc.devcycle_project()), 201
    ),
    ("PATCH", "/projects/{projectId}/changelog/{id}"): Entry(
        "write",
        _board_child(_make_entry, "changelog", "entry", "PATCH", {"status": "published"}),
        200,
        foreign=("entry",),
    ),
    ("DELETE", "/projects/{projectId}/changelog/{id}"): Entry(
        "write", _board_child(_make_entry, "changelog", "entry", "DELETE", {}), 200, foreign=("entry",)
    ),
    # -- Airborne files and packages ------------------------------------------------------------------
    ("POST", "/file"): Entry("write", lambda sc: sc.ab("POST", "/file", FILE, **sc.app()), 200),
    ("POST", "/file/bulk"): Entry(
        "write", lambda sc: sc.ab("POST", "/file/bulk", {"files": [FILE], "skip_duplicates": False}, **sc.app()), 200
    ),
    ("PATCH", "/file/{file_key}"): Entry("write", _retag, 200),
    ("POST", "/packages"): Entry(
        "write",
        lambda sc: sc.ab(
            "POST", "/packages", {"index": "index.js", "tag": "beta", "files": ["vendor.js"]}, **sc.package_app()
        ),
        200,
    ),
    # -- Airborne dimensions and cohorts --------------------------------------------------------------
    ("POST", f"{D}/create"): Entry(
        "write",
        lambda sc: sc.ab(
            "POST",
            f"{D}/create",
            {"dimension": "country", "schema": {"type": "string"}, "description": "c"},
            **sc.app(),
        ),
        200,
    ),
    ("PUT", f"{D}/{{dimension_name}}"): Entry("write", _dimension("PUT", {"position": 1, "change_reason": "x"}), 200),
    ("DELETE", f"{D}/{{dimension_name}}"): Entry("write", _dimension("DELETE"), 200),
    ("POST", f"{D}/{{cohort_dimension_name}}/cohort/checkpoint"): Entry(
        "write", _cohort("/cohort/checkpoint", "POST", CHECKPOINT), 200
    ),
    ("POST", f"{D}/{{cohort_dimension_name}}/cohort/group"): Entry(
        "write", _cohort("/cohort/group", "POST", GROUP), 200
    ),
    ("PUT", f"{D}/{{cohort_dimension_name}}/cohort/group/priority"): Entry(
        "write", _cohort("/cohort/group/priority", "PUT", PRIORITY, ("g1", "g2")), 200
    ),
    ("POST", f"{D}/{{cohort_dimension_name}}/checkpoint"): Entry(
        "write", _cohort("/checkpoint", "POST", CHECKPOINT), 200
    ),
    ("POST", f"{D}/{{cohort_dimension_name}}/group"): Entry("write", _cohort("/group", "POST", GROUP), 200),
    ("PUT", f"{D}/{{cohort_dimension_name}}/group/priority"): Entry(
        "write", _cohort("/group/priority", "PUT", PRIORITY, ("g1", "g2")), 200
    ),
    # -- Airborne configs and releases ----------------------------------------------------------------
    ("POST", "/organisations/applications/config/create"): Entry(
        "write",
        lambda sc: sc.ab(
            "POST", "/organisations/applications/config/create", {"config": {"version": "1.0"}}, **sc.app()
        ),
        200,
    ),
    ("POST", "/releases"): Entry("write", lambda sc: sc.ab("POST", "/releases", {}, **sc.package_app()), 200),
    ("POST", "/releases/{release_id}/ramp"): Entry(
        "write", _release_action("ramp", {"traffic_percentage": 50}), 200, foreign=("release",)
    ),
    ("POST", "/releases/{release_id}/conclude"): Entry(
        "write", _release_action("conclude", {"chosen_variant": "experimental"}), 200, foreign=("release",)
    ),
    ("POST", "/releases/{release_id}/discard"): Entry(
        "write", _release_action("discard", {}), 200, foreign=("release",)
    ),
    # -- DevCycle projects, environments, SDK keys ----------------------------------------------------
    ("POST", "/v1/projects"): Entry(
        "admin",
        lambda sc: Req(
            "POST",
            "/v1/projects",
            {"org": sc.org},
            {"x-organisation": "{org}"},
            body={"name": "Mobile", "key": uid("mobile")},
        ),
        201,
    ),
    ("PATCH", "/v1/projects/{project}/settings"): Entry(
        "admin",
        lambda sc: sc.dv("PATCH", "/settings", {"settings": {"edgeDB": {"enabled": True}}}, **sc.devcycle_project()),
        200,
    ),
    ("PATCH", "/v1/projects/{project}/settings/protected"): Entry(
        "owner", lambda sc: sc.dv("PATCH", "/settings/protected", {"settings": WORKFLOW}, **sc.devcycle_project()), 200
    ),
    ("POST", "/v1/projects/{project}/webhooks"): Entry(
        "admin",
        lambda sc: sc.dv(
            "POST",
            "/webhooks",
            {"name": "h", "url": "https://hooks.example.com/x", "events": ["createdFeature"]},
            **sc.devcycle_project(),
        ),
        201,
    ),
    ("PATCH", "/v1/projects/{project}/webhooks/{id}"): Entry(
        "admin", _webhook("PATCH", {"name": "renamed"}), 200, foreign=("id",)
    ),
    ("DELETE", "/v1/projects/{project}/webhooks/{id}"): Entry("admin", _webhook("DELETE"), 200, foreign=("id",)),
    ("POST", "/v2/projects/{project}/features/{feature}/change-requests"): Entry(
        "write",
        lambda sc: _proposal(sc),
        201,
        foreign=("feature",),
    ),
    ("PATCH", "/v2/projects/{project}/features/{feature}/change-requests/{id}/submit"): Entry(
        "admin",
        _change_request("submit", "draft"),
        200,
        foreign=("feature", "id"),
    ),
    ("PATCH", "/v2/projects/{project}/features/{feature}/change-requests/{id}/review"): Entry(
        "admin",
        _change_request("review", "pending", {"action": "approved", "comment": "ok"}),
        200,
        foreign=("feature", "id"),
    ),
    ("PATCH", "/v2/projects/{project}/features/{feature}/change-requests/{id}/apply"): Entry(
        "admin",
        _change_request("apply", "approved", {"description": "go", "action": "applied"}),
        200,
        foreign=("feature", "id"),
    ),
    ("PATCH", "/v2/projects/{project}/features/{feature}/change-requests/{id}/cancel"): Entry(
        "admin", _change_request("cancel", "pending"), 200, foreign=("feature", "id")
    ),
    ("POST", "/v1/projects/{project}/metrics"): Entry(
        "write", lambda sc: sc.dv("POST", "/metrics", _metric_body(), **sc.devcycle_project()), 201
    ),
    ("PATCH", "/v1/projects/{project}/metrics/{key}"): Entry(
        "write", _metric("PATCH", {"name": "Renamed"}), 200, foreign=("key",)
    ),
    ("DELETE", "/v1/projects/{project}/metrics/{key}"): Entry("write", _metric("DELETE"), 204, foreign=("key",)),
    ("POST", "/v1/projects/{project}/metric-associations"): Entry("write", _association("POST"), 201),
    ("DELETE", "/v1/projects/{project}/metric-associations"): Entry("write", _association("DELETE"), 204),
    ("PATCH", "/v1/projects/{project}/userProfile/current"): Entry(
        "read",
        lambda sc: sc.dv("PATCH", "/userProfile/current", {"dvcUserId": uid("qa")}, **sc.devcycle_project()),
        200,
    ),
    ("PUT", "/v1/projects/{project}/features/{feature}/overrides/current"): Entry(
        "read", _override("PUT"), 200, foreign=("feature",)
    ),
    ("DELETE", "/v1/projects/{project}/features/{feature}/overrides/current"): Entry(
        "read", _override("DELETE"), 204, foreign=("feature",)
    ),
    ("DELETE", "/v1/projects/{project}/overrides/current"): Entry(
        "read", lambda sc: sc.dv("DELETE", "/overrides/current", **sc.devcycle_project()), 204
    ),
    ("PATCH", "/v1/projects/{project}"): Entry(
        "admin", lambda sc: sc.dv("PATCH", "", {"name": "Renamed"}, **sc.devcycle_project()), 200
    ),
    ("DELETE", "/v1/projects/{project}"): Entry("admin", lambda sc: sc.dv("DELETE", "", **sc.devcycle_project()), 204),
    ("POST", "/v1/projects/{project}/environments"): Entry(
        "admin",
        lambda sc: sc.dv(
            "POST", "/environments", {"name": "Staging", "key": "staging", "type": "staging"}, **sc.devcycle_project()
        ),
        201,
    ),
    ("PATCH", "/v1/projects/{project}/environments/{environment}"): Entry(
        "admin", _dv_environment("PATCH", "", {"name": "Dev"}), 200, foreign=("environment",)
    ),
    ("DELETE", "/v1/projects/{project}/environments/{environment}"): Entry(
        "admin", _dv_environment("DELETE", ""), 204, foreign=("environment",)
    ),
    ("POST", "/v1/projects/{project}/environments/{environment}/keys"): Entry(
        "admin", _dv_environment("POST", "/keys", {"server": True}), 200, foreign=("environment",)
    ),
    ("PUT", "/v1/projects/{project}/environments/{environment}/keys/{key}/invalidate"): Entry(
        "admin", _invalidate, 200, foreign=("environment", "sdk_key")
    ),
    ("POST", "/v1/projects/{project}/environments/{environment}/sdk-keys"): Entry(
        "admin", _dv_environment("POST", "/sdk-keys", {"server": True}), 200, foreign=("environment",)
    ),
    ("DELETE", "/v1/projects/{project}/environments/{environment}/sdk-keys/{key}"): Entry(
        "admin", _invalidate_documented, 200, foreign=("environment", "sdk_key")
    ),
    ("POST", "/v2/projects/{project}/features"): Entry(
        "write",
        lambda sc: Req(
            "POST",
            "/v2/projects/{project}/features",
            sc.devcycle_project(),
            {"x-organisation": "{org}"},
            body=bool_feature(uid("f")),
        ),
        201,
    ),
    ("PATCH", "/v2/projects/{project}/features/{feature}"): Entry(
        "write", _dv2_feature("PATCH", "", {"name": "Renamed"}), 200, foreign=("feature",)
    ),
    ("PATCH", "/v2/projects/{project}/features/{feature}/status"): Entry(
        "write", _dv2_feature("PATCH", "/status", {"status": "archived"}), 200, foreign=("feature",)
    ),
    ("PATCH", "/v2/projects/{project}/features/{feature}/staleness"): Entry(
        "write", _dv2_feature("PATCH", "/staleness", {"disabled": True}), 200, foreign=("feature",)
    ),
    ("PATCH", "/v2/projects/{project}/features/{feature}/summary"): Entry(
        "write", _dv2_feature("PATCH", "/summary", {"markdown": "# x"}), 200, foreign=("feature",)
    ),
    ("PATCH", "/v2/projects/{project}/features/{feature}/static-configuration"): Entry(
        "write",
        _dv2_feature("PATCH", "/static-configuration", {"description": "s"}, complete=True),
        200,
        foreign=("feature",),
    ),
    ("PATCH", "/v1/projects/{project}/features/{feature}/static-configuration"): Entry(
        "write",
        _dv2_feature("PATCH", "/static-configuration", {"description": "s"}, complete=True, v1=True),
        200,
        foreign=("feature",),
    ),
    ("POST", "/v1/projects/{project}/features/{feature}/integrations/jira/issues"): Entry(
        "write", _dv_feature("POST", "/integrations/jira/issues", {"issueId": "J-1"}), 201, foreign=("feature",)
    ),
    ("DELETE", "/v1/projects/{project}/features/{feature}/integrations/jira/issues/{issue_id}"): Entry(
        "write", _jira_unlink, 200, foreign=("feature",)
    ),
    ("PATCH", "/v1/semantic/projects/{project}/audiences/{key}"): Entry(
        "write", _semantic_patch, 200, foreign=("audience",)
    ),
    ("POST", "/v1/integrations/dynatrace"): Entry(
        "admin",
        lambda sc: Req(
            "POST", "/v1/integrations/dynatrace", {"org": sc.org}, {"x-organisation": "{org}"}, body=DYNATRACE_ENV
        ),
        201,
    ),
    ("DELETE", "/v1/integrations/dynatrace/{dynatraceEnvironmentId}"): Entry("admin", _dynatrace_delete, 200),
    # -- DevCycle features, variations, variables, configurations -------------------------------------
    ("POST", "/v1/projects/{project}/features"): Entry(
        "write", lambda sc: sc.dv("POST", "/features", bool_feature(uid("f")), **sc.devcycle_project()), 201
    ),
    ("POST", "/v1/projects/{project}/features/multiple"): Entry(
        "write",
        lambda sc: sc.dv(
            "POST", "/features/multiple", [bool_feature(uid("f")), bool_feature(uid("f"))], **sc.devcycle_project()
        ),
        201,
    ),
    ("PATCH", "/v1/projects/{project}/features/{feature}"): Entry(
        "write", _dv_feature("PATCH", "", {"name": "Renamed"}), 200, foreign=("feature",)
    ),
    ("DELETE", "/v1/projects/{project}/features/{feature}"): Entry(
        "write", _dv_feature("DELETE", ""), 204, foreign=("feature",)
    ),
    ("PATCH", "/v1/projects/{project}/features/{feature}/status"): Entry(
        "write",
        _dv_feature("PATCH", "/status", {"status": "complete", "staticVariation": "on"}),
        200,
        foreign=("feature",),
    ),
    ("POST", "/v1/projects/{project}/features/{feature}/variations"): Entry(
        "write", _dv_feature("POST", "/variations", {"key": "third", "name": "Third"}), 201, foreign=("feature",)
    ),
    ("PATCH", "/v1/projects/{project}/features/{feature}/variations/{key}"): Entry(
        "write", _dv_variation("PATCH", {"name": "Off!"}), 200, foreign=("feature", "variation")
    ),
    ("DELETE", "/v1/projects/{project}/features/{feature}/variations/{key}"): Entry(
        "write", _dv_variation("DELETE"), 204, foreign=("feature", "variation")
    ),
    ("PATCH", "/v1/projects/{project}/features/{feature}/configurations"): Entry(
        "write", _configuration, 200, foreign=("feature",)
    ),
    ("POST", "/v1/projects/{project}/features/{feature}/evaluate"): Entry(
        "read", _draft, 200, foreign=("feature",), writes=False
    ),
    ("POST", "/v1/projects/{project}/variables"): Entry(
        "write",
        lambda sc: sc.dv("POST", "/variables", {"key": "extra", "type": "String"}, **sc.devcycle_project()),
        201,
    ),
    ("PATCH", "/v1/projects/{project}/variables/{key}"): Entry(
        "write", _dv_variable("PATCH", "", {"description": "d"}), 200, foreign=("variable",)
    ),
    ("PATCH", "/v1/projects/{project}/variables/{key}/status"): Entry(
        "write", _dv_variable("PATCH", "/status", {"status": "archived"}), 200, foreign=("variable",)
    ),
    ("DELETE", "/v1/projects/{project}/variables/{key}"): Entry(
        "write", _dv_variable("DELETE", ""), 204, foreign=("variable",)
    ),
    # -- DevCycle audiences and custom properties -----------------------------------------------------
    ("POST", "/v1/projects/{project}/audiences"): Entry(
        "write",
        lambda sc: sc.dv(
            "POST", "/audiences", {"name": "Germany", "key": "de", "filters": DE_FILTER}, **sc.devcycle_project()
        ),
        201,
    ),
    ("PATCH", "/v1/projects/{project}/audiences/{key}"): Entry(
        "write", _dv_audience("PATCH", {"name": "DACH"}), 200, foreign=("audience",)
    ),
    ("DELETE", "/v1/projects/{project}/audiences/{key}"): Entry(
        "write", _dv_audience("DELETE"), 204, foreign=("audience",)
    ),
    ("POST", "/v1/projects/{project}/customProperties"): Entry(
        "write",
        lambda sc: sc.dv(
            "POST",
            "/customProperties",
            {"name": "Plan", "key": "plan", "type": "String", "propertyKey": "plan"},
            **sc.devcycle_project(),
        ),
        201,
    ),
    ("PATCH", "/v1/projects/{project}/customProperties/{key}"): Entry(
        "write", _dv_property("PATCH", {"name": "Tier"}), 200, foreign=("property",)
    ),
    ("DELETE", "/v1/projects/{project}/customProperties/{key}"): Entry(
        "write", _dv_property("DELETE"), 204, foreign=("property",)
    ),
}

# The document /openapi.json serves (the test below checks the served one is the same).
OPENAPI = document(ROUTERS, "flagedge control plane", VERSION)
ROUTES = sorted(set(write_routes(OPENAPI)) | set(MATRIX))


def _variants(route: tuple[str, str]) -> tuple[str, ...]:
    entry = MATRIX.get(route)
    if entry is None:
        return ("owner",)  # one failing case that names the route
    extra = (OWN,) if entry.needed is not None else ()
    return CALLERS + extra + ((FOREIGN,) if entry.foreign else ())


CASES = [
    pytest.param(route, caller, id=f"{route[0]} {route[1]} as {caller}")
    for route in ROUTES
    for caller in _variants(route)
]


# ---------------------------------------------------------------------------------------------
# Fixtures and checks


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None) -> Iterator[World]:
    """The two organisations on each store in turn (the whole matrix runs on SQLite, then on PostgreSQL)."""
    data_dir: Path = tmp_path_factory.mktemp("authz-matrix")
    settings = Settings(data_dir=data_dir, jwt_secret="matrix-secret-" + "x" * 32, database_url=module_database_url)
    app = create_app(settings)
    with TestClient(app) as client:
        yield World(Api(client))


def expected_status(entry: Entry, caller: str) -> int:
    if caller in ("anonymous", "key:revoked"):
        return 401
    if caller in SYTWM_CALLERS:
        return 403  # the key API's keys open no admin route
    if caller.startswith("key:") and entry.keys_forbidden:
        return 403
    if entry.needed is None:
        return entry.success
    if caller == "globex":
        return 404
    role = ROLE_OF[caller]
    if role is None:
        return 404
    return entry.success if RANK[role] >= RANK[entry.needed] else 403


def _error(response: Any) -> tuple[str, str, list[Any]]:
    err = error_of(response.json())
    return err["code"], err["message"], err["details"]


def _normalised(response: Any, values: list[str]) -> tuple[str, str, list[Any]]:
    code, message, details = _error(response)
    for v in values:
        message = message.replace(v, "<id>")
    return code, message, details


def test_served_openapi_lists_the_matrix_routes(world: World) -> None:
    served = world.client.get("/openapi.json").json()
    assert write_routes(served) == write_routes(OPENAPI)
    missing = [r for r in write_routes(served) if r not in MATRIX]
    stale = [r for r in MATRIX if r not in write_routes(served)]
    assert not missing, f"write routes without an authorization-matrix entry (add them to MATRIX): {missing}"
    assert not stale, f"matrix entries for routes that no longer exist: {stale}"
    assert len(MATRIX) >= 60


@pytest.mark.parametrize(("route", "caller"), CASES)
def test_write_route_authorization(world: World, route: tuple[str, str], caller: str) -> None:
    entry = MATRIX.get(route)
    assert entry is not None, f"{route[0]} {route[1]} has no authorization-matrix entry: add one to MATRIX"
    assert route in write_routes(OPENAPI), f"{route} is in MATRIX but not a write route of /openapi.json"
    client = world.client
    owner = world.globex if caller == OWN else world.owner
    org = "acme" if caller != OWN else "globex"
    if entry.fresh_org:
        org = world.fresh_org(owner)
    req = entry.build(Scene(world, org, owner))
    if caller == FOREIGN:
        # globex's own organisation/project, acme's resource ids
        own_org = world.fresh_org(world.globex) if entry.fresh_org else "globex"
        own = entry.build(Scene(world, own_org, world.globex))
        req = own.with_slots(**{k: req.slots[k] for k in entry.foreign})
    if entry.ends_session and (caller in USER_ROLES or caller == "globex"):
        auth = world.api.signup(uid("session-")).auth
    else:
        auth = world.auth(caller, org)  # (may create the key first)
    before = world.audit_count()
    r = req.send(client, auth)
    if caller == FOREIGN:
        foreign_values = [req.slots[k] for k in entry.foreign]
        missing = req.missing(entry.foreign)
        assert_error(r, 404, "not_found")
        assert world.audit_count() == before, "a refused write left an audit entry"
        nowhere = missing.send(client, world.globex.auth)
        assert_error(nowhere, 404, "not_found")
        missing_values = [missing.slots[k] for k in entry.foreign]
        assert _normalised(r, foreign_values) == _normalised(nowhere, missing_values)
        return
    expected = entry.success if caller == OWN else expected_status(entry, caller)
    if expected < 300:
        assert r.status_code == expected, r.text
        if entry.writes:
            assert world.audit_count() > before, "a write must leave an audit entry"
        else:
            assert world.audit_count() == before, "a read left an audit entry"
        return
    code = {401: "unauthorized", 403: "forbidden", 404: "not_found"}[expected]
    assert_error(r, expected, code)
    assert world.audit_count() == before, "a refused write left an audit entry"
    if expected == 404:
        # Indistinguishable from a resource that does not exist at all, for this caller and for acme's owner.
        nowhere = req.missing()
        assert _error(nowhere.send(client, auth)) == _error(r)
        assert _error(nowhere.send(client, world.owner.auth)) == _error(r)
