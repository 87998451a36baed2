"""Bad input never makes the control plane fail: schemathesis over ``/openapi.json`` and random JSON bodies.

* Every operation of the served OpenAPI document is fuzzed in-process by schemathesis (valid and
  invalid parameters and bodies) as an owner of a seeded organisation, with the path parameters
  naming real resources (and, in part of the examples, whatever schemathesis makes up). No response
  may be a 5xx; every 4xx is the error envelope of DESIGN.md section 5b, as the document declares.
* Every write route is also sent random JSON: deep nesting, huge strings, wrong types at the
  fields of its body model, NaN/Infinity tokens and out-of-range numbers, unusual unicode, and
  non-object roots. The answer is always a 2xx or a 4xx envelope, never a 5xx.

Each operation gets a fresh seeded organisation, so destructive examples only affect their own
operation. ``FUZZ_EXAMPLES`` scales the number of examples per operation (default keeps the file
well under the 90 s budget on the CI machine).

Everything runs on each store (SQLite, then PostgreSQL: ``module_database_url``): every operation
and the deterministic sweep of every field on both (but for the deeply nested values, which never
reach the store), while the examples hypothesis draws are split between them (each store draws
its half; a run's draws differ anyway), so the second store costs its seeding and the sweep, not a
second full budget of examples.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from contract.errors import code_for
from control_plane.app import ROUTERS, VERSION, create_app
from control_plane.openapi import document
from control_plane.ratelimit import LoginGuard
from control_plane.settings import Settings
from control_plane.shared_limits import SharedLoginGuard
from tests.conftest import STORES
from tests.control_plane.conftest import Api, User, assert_error
from tests.support.error_shapes import error_of

SCALE = float(os.environ.get("FUZZ_EXAMPLES", "1"))
# Per store: each store draws half of the examples (see the module docstring).
SCHEMATHESIS_EXAMPLES = max(1, int(10 * SCALE) // len(STORES))
RANDOM_BODY_EXAMPLES = max(1, int(20 * SCALE) // len(STORES))
# Valid examples of these hash or verify a password (argon2, tens of ms each): fewer of them.
SLOW = {("POST", "/users/create"), ("POST", "/users/login"), ("POST", "/users/password")}
# These end the caller's sessions: they run as a throwaway user, never as the owner the rest use.
SESSION_ENDING = {("POST", "/users/logout"), ("POST", "/users/password")}
BASE_URL = "http://testserver"
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")
_orgs = itertools.count(1)

OPENAPI = document(ROUTERS, "flagedge control plane", VERSION)
OPERATIONS = sorted((method.upper(), path) for path, item in OPENAPI["paths"].items() for method in item)
SPECS = {(s.method, _PARAM.sub(lambda m: "{" + m.group(1) + "}", s.path)): s for r in ROUTERS for s in r.specs}
WRITES = [op for op in OPERATIONS if op[0] in WRITE_METHODS]


# ---------------------------------------------------------------------------------------------
# The seeded world


@dataclass
class Seed:
    org: str
    path: dict[str, str]
    headers: dict[str, str]
    # The /api/v1 keys of the organisation by scope: key-API routes are fuzzed with the key they take.
    keys: dict[str, str]
    # ``{id}`` by the collection before it in the path (Releaseo's resources); else path["id"].
    ids: dict[str, str] = field(default_factory=dict)
    owner_id: str = ""  # the seeding owner (a reviewer of the seeded change request)

    def value(self, path: str, name: str) -> str:
        """The seeded value of path parameter ``name`` in ``path``."""
        if name == "id":
            before = path.split("/{id}")[0].rsplit("/", 1)[-1]
            return self.ids.get(before, self.path["id"])
        return self.path[name]

    def url(self, path: str) -> str:
        return _PARAM.sub(lambda m: self.value(path, m.group(1)), path)


class World:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.client = api.client
        self.owner: User = api.signup("fuzz-owner")
        self.member: User = api.signup("fuzz-member")
        self._shared: Seed | None = None
        self.postgresql: bool = self.client.app.state.services.store.postgresql  # type: ignore[attr-defined]
        api.signup("fuzz-outsider")
        login = self.client.post("/users/login", json={"name": "fuzz-owner", "password": "correct-horse"})
        _REFRESH[:] = [login.json()["user_token"]["refresh_token"]]

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        kwargs: dict[str, Any] = {"headers": {**(headers or {}), **self.owner.auth}}
        if body is not None:
            kwargs["json"] = body
        r = self.client.request(method, path, **kwargs)
        assert r.status_code in (200, 201, 204), r.text
        return r.json() if r.status_code != 204 else None

    def headers(self, seed: Seed, method: str, path: str) -> dict[str, str]:
        """The seed's headers, as a new user for the routes that end the caller's sessions, and
        with the organisation's /api/v1 key for the routes of the key API."""
        if (method, path) in SESSION_ENDING:
            return {**seed.headers, **self.api.signup().auth}
        keys = SPECS[(method, path)].keys
        if keys is not None:
            return {"Authorization": f"Bearer {seed.keys[keys.scopes[0]]}"}
        return seed.headers

    def shared_seed(self) -> Seed:
        """One seeded organisation for the operations that change nothing."""
        if self._shared is None:
            self._shared = self.seed()
        return self._shared

    def seed(self) -> Seed:
        """A new organisation with one of everything, all named ``fz`` where the API takes keys."""
        org = f"fz-{next(_orgs)}"
        self.api.organisation(self.owner, org)
        self.api.member(self.owner, org, self.member, "read")
        h = {"x-organisation": org, "x-application": "fz"}
        self.call("POST", "/v1/projects", {"name": "Fuzz", "key": "fz"}, h)
        p = "/v1/projects/fz"
        self.call("POST", f"{p}/environments", {"name": "Development", "key": "development", "type": "development"}, h)
        self.call("POST", f"{p}/audiences", {"name": "Fz", "key": "fz", "filters": {"filters": [{"type": "all"}]}}, h)
        feature = {
            "key": "fz",
            "name": "Fuzz",
            "variables": [{"key": "fz", "type": "Boolean"}],
            "variations": [
                {"key": "fz", "name": "On", "variables": {"fz": True}},
                {"key": "off", "name": "Off", "variables": {"fz": False}},
            ],
        }
        self.call("POST", f"{p}/features", feature, h)
        target = {
            "audience": {"filters": {"filters": [{"type": "audienceMatch", "_audiences": ["fz"]}]}},
            "distribution": [{"_variation": "fz", "percentage": 1}],
        }
        self.call(
            "PATCH",
            f"{p}/features/fz/configurations?environment=development",
            {"status": "active", "targets": [target]},
            h,
        )
        self.call(
            "POST", f"{p}/customProperties", {"name": "Fz", "key": "fz", "type": "String", "propertyKey": "fz"}, h
        )
        self.call("PUT", "/projects/fz/widget-config", {"settings": {"theme": "dark"}}, h)
        segment = self.call(
            "POST",
            "/projects/fz/segments",
            {
                "name": "fz",
                "definition": {"type": "context", "field": "company.plan", "operator": "IS", "values": ["x"]},
            },
            h,
        )
        board = "/projects/fz"
        ids = {
            "segments": segment["id"],
            "feature-request-categories": self.call("POST", f"{board}/feature-request-categories", {"name": "fz"}, h)[
                "id"
            ],
            "feature-requests": self.call("POST", f"{board}/feature-requests", {"title": "fz"}, h)["id"],
            "roadmap": self.call("POST", f"{board}/roadmap", {"title": "fz"}, h)["id"],
            "changelog": self.call("POST", f"{board}/changelog", {"title": "fz"}, h)["id"],
        }
        comment = f"fz-comment-{org}"  # comments arrive through the edge: written as the consumer would
        with self.client.app.state.services.store.transaction() as db:  # type: ignore[attr-defined]
            db.execute(
                "INSERT INTO releaseo_comments (id, request_id, body, source, created_at)"
                " VALUES (?, ?, 'fz', 'sdk', 'x')",
                (comment, ids["feature-requests"]),
            )
        for file_path in ("fz.js", "index.js"):
            self.call(
                "POST",
                "/file",
                # Size and checksum as Airborne's CLI sends them: releases of verified files go live.
                {
                    "file_path": file_path,
                    "url": f"https://cdn.example.com/{file_path}",
                    "tag": "latest",
                    "size": 1,
                    "checksum": "ab" * 32,
                },
                h,
            )
        self.call("POST", "/packages", {"index": "index.js", "tag": "latest", "files": ["fz.js"]}, h)
        dim = "/organisations/applications/dimension"
        self.call("POST", f"{dim}/create", {"dimension": "fzd", "schema": {"type": "string"}, "description": "d"}, h)
        self.call(
            "POST",
            f"{dim}/create",
            {"dimension": "fzc", "dimension_type": "cohort", "depends_on": "fzd", "description": "c"},
            h,
        )
        self.call("POST", f"{dim}/fzc/cohort/group", {"name": "g1", "members": ["a"]}, h)
        self.call("POST", "/organisations/applications/config/create", {"config": {"version": "1.0"}}, h)
        self.call("POST", "/releases", {}, h)
        release = self.call("POST", "/releases", {}, h)
        key = self.call("POST", f"/organisations/{org}/api-keys", {"name": "fz", "scope": "read"})
        steps = [{"id": "fz", "label": "Fz", "kind": "yes_no"}, {"id": "fzt", "label": "T", "kind": "text"}]
        self.call("POST", "/admin/posts", {"slug": "fz", "title": "Fz", "definition": {"steps": steps}}, h)
        self.call("POST", "/admin/posts/fz/publish", {}, h)
        sytwm = {s: self.call("POST", "/admin/api-keys", {"name": s, "scope": s}, h)["key"] for s in ("submit", "read")}
        # DevCycle: a metric, a webhook, the approval workflow (publishers bypass it) and a draft
        # change request of fz.
        self.call("POST", f"{p}/metrics", {**METRIC, "key": "fz"}, h)
        ids["webhooks"] = self.call("POST", f"{p}/webhooks", WEBHOOK, h)["_id"]
        self.call("PATCH", f"{p}/settings/protected", {"settings": WORKFLOW}, h)
        ids["change-requests"] = self.call("POST", "/v2/projects/fz/features/fz/change-requests", PROPOSAL, h)["_id"]
        feedback = self.client.post(
            "/api/v1/feedback",
            json={"post_slug": "fz", "answers": [{"step_id": "fz", "answer": True}]},
            headers={"Authorization": f"Bearer {sytwm['submit']}"},
        )
        assert feedback.status_code == 201, feedback.text
        path = {
            "organisation_name": org,
            "project": "fz",
            "projectId": "fz",
            "environment": "development",
            "feature": "fz",
            "key": "fz",
            "id": segment["id"],
            "release_id": release["id"],
            "dimension_name": "fzd",
            "cohort_dimension_name": "fzc",
            "file_key": "fz.js@version:1",
            "key_id": key["id"],
            "slug": "fz",
            "feedback_id": feedback.json()["id"],
            # Releaseo: a segment version, a comment and an SDK user that exist nowhere (404s).
            "version": "1",
            "commentId": comment,
            "userId": "fz",
            # Airborne's public release route: the seeded application.
            "organisation": org,
            "application": "fz",
            "dynatraceEnvironmentId": "fz",
            "issue_id": "FZ-1",
            "metric": "fz",
        }
        return Seed(org, path, {**self.owner.auth, **h}, sytwm, ids, self.owner.user_id)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None) -> Iterator[World]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    # The /api/v1 rate limits off: fuzzing sends more per second than a client would.
    settings = Settings(
        data_dir=data_dir,
        database_url=module_database_url,
        jwt_secret="fuzz-secret-" + "x" * 32,
        api_v1_rate_per_key=0,
        api_v1_rate_per_address=0,
    )
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield World(Api(client))


@pytest.fixture(scope="module")
def schema(world: World) -> Any:
    served = world.client.get("/openapi.json")
    assert served.status_code == 200
    return schemathesis.openapi.from_dict(served.json())


# ---------------------------------------------------------------------------------------------
# Checks


def assert_no_failure(response: Any, label: str) -> None:
    """Never a 5xx; a 4xx is exactly the error body of DESIGN.md 5b (the envelope, or Airborne's
    shape on Airborne routes), with the code of its status."""
    status = response.status_code
    assert status < 500, f"{label}: {status} {response.text[:2000]}"
    if status < 400:
        return
    err = error_of(response.json())
    assert set(err) == {"code", "message", "details", "request_id"}, f"{label}: {err}"
    assert err["code"] == code_for(status), f"{label}: {status} with code {err['code']}"
    assert isinstance(err["message"], str) and err["message"], f"{label}: {err}"
    assert isinstance(err["details"], list), f"{label}: {err}"
    for d in err["details"]:
        assert set(d) == {"field", "code", "message"} and all(isinstance(v, str) for v in d.values()), f"{label}: {d}"
    assert err["request_id"] == response.headers["x-request-id"], f"{label}: {err}"


def fuzz_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _send(client: TestClient, kwargs: dict[str, Any]) -> Any:
    content: dict[str, Any] = {}
    if "json" in kwargs:
        content["json"] = kwargs["json"]
    elif "data" in kwargs:
        data = kwargs["data"]
        content["content"] = data.encode() if isinstance(data, str) else data
    try:
        return client.request(
            kwargs["method"], kwargs["url"], headers=kwargs["headers"], params=kwargs["params"], **content
        )
    except httpx.InvalidURL:
        # The HTTP client itself refuses to build the request (a query over its 65,536-character
        # URL limit): there is no request to test, so hypothesis draws another example.
        reject()


# ---------------------------------------------------------------------------------------------
# schemathesis


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_schemathesis_operation(world: World, schema: Any, method: str, path: str) -> None:
    seed = world.seed() if method in WRITE_METHODS else world.shared_seed()
    operation = schema[path][method]
    names = _PARAM.findall(path)
    fixed = {n: seed.value(path, n) for n in names}
    spec = SPECS[(method, path)]
    negatable = spec.body is not None or spec.query is not None
    headers = world.headers(seed, method, path)
    strategies = [operation.as_strategy(GenerationMode.POSITIVE, path_parameters=fixed, headers=headers)]
    if negatable:
        strategies.append(operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=fixed, headers=headers))
    if names:
        strategies.append(operation.as_strategy(GenerationMode.POSITIVE, headers=headers))
    label = f"{method} {path}"

    @fuzz_settings(max(1, SCHEMATHESIS_EXAMPLES // (3 if (method, path) in SLOW else 1)) * len(strategies))
    @given(case=st.one_of(strategies))
    def run(case: Any) -> None:
        kwargs = case.as_transport_kwargs(base_url=BASE_URL)
        response = _send(world.client, kwargs)
        assert_no_failure(response, f"{label} {case.path_parameters} {case.query} {case.body!r:.2000}")
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

    run()


# ---------------------------------------------------------------------------------------------
# Random JSON at every write route
#
# A body is either random JSON as a whole, or a body schemathesis generated for the route with one
# field (any depth, from the body model's JSON schema) replaced by a nasty JSON fragment, so that
# validators and handlers see the bad value next to otherwise valid fields.

_NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=2**53, max_value=2**70),
    st.integers(min_value=-(2**70), max_value=-(2**53)),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -0.0, 1e308, -1e308, 5e-324, 2**63, -(2**63) - 1, 2**64 - 1, 2**64]),
)
_TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    st.sampled_from(["", " ", "\x00", "\u202e", "😀" * 50, "NaN", "Infinity", "null", "../..", "%00", "a" * 300]),
)
_SCALARS = st.one_of(st.none(), st.booleans(), _NUMBERS, _TEXT)
_JSON = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.text(max_size=20), children, max_size=5)
    ),
    max_leaves=30,
)
# Depths around the limits of the parsers and validators (32/64 levels, orjson's 254 and 1024).
_DEPTHS = st.one_of(
    st.sampled_from([31, 33, 63, 65, 100, 253, 254, 255, 256, 300, 511, 1000, 1022, 1023, 1024, 1025, 3000]),
    st.integers(min_value=2, max_value=2000),
)


def _deep(depth: int, kind: str) -> str:
    """JSON text nested ``depth`` levels deep (built as text: no recursion)."""
    if kind == "list":
        return "[" * depth + "]" * depth
    if kind == "mixed":
        return '[{"a":' * (depth // 2) + "1" + "}]" * (depth // 2)
    return '{"a":' * depth + "1" + "}" * depth


_DEEP = st.builds(_deep, _DEPTHS, st.sampled_from(["list", "dict", "mixed"]))
_TOKENS = st.sampled_from(
    [
        "NaN",
        "-NaN",
        "Infinity",
        "-Infinity",
        "1e999",
        "-1e999",
        "1e-400",
        "-0",
        "18446744073709551615",
        "18446744073709551616",
        "9223372036854775808",
        "-9223372036854775809",
        "123456789012345678901234567890",
        '"\\ud800"',
        '"\\u0000"',
        '"\\udfff\\ud800"',
        "[]",
        "{}",
        "true",
        "null",
        '""',
        '"9999-12-31T23:59:59-23:59"',
        '"0001-01-01T00:00:00+23:59"',
        '"0001-01-01T00:00:00Z"',
        '"1970-01-01T00:00:00Z"',
    ]
)
_HUGE = st.integers(min_value=1, max_value=2_000_000).map(lambda n: json.dumps("x" * n))
FRAGMENTS = st.one_of(_JSON.map(json.dumps), _DEEP, _TOKENS, _HUGE)
_RAW = st.sampled_from(
    [
        b"",
        b"null",
        b"[]",
        b'"a string"',
        b"12",
        b"NaN",
        b'{"a": 1',
        b"{'a': 1}",
        b'{"a": 1} trailing',
        b"\xff\xfe{}",
        b'{"a": "\xc3\x28"}',
        b"\x00",
        b'{"name": "\xed\xa0\x80"}',
    ]
)
# Sent at every field of every write route (deterministic sweep).
# Nesting is met in Python (the parser, the validators, orjson's encoder) before any SQL: swept on
# SQLite only, the rest on both stores.
NESTING_SWEEP = (_deep(300, "dict"), _deep(700, "mixed"))
SWEEP = (
    "18446744073709551615",
    '"9999-12-31T23:59:59-23:59"',
    '"0999-01-01T00:00:00Z"',
    json.dumps("x" * 20_000),
    # Under the 10,000-character limit but 9 kB that do not compress: over PostgreSQL's ~2.7 kB
    # index entries (SQLite has no such limit).
    json.dumps("".join(chr(random.Random(3000).randint(0x4E00, 0x9FFF)) for _ in range(3000))),
)
_TOKEN = "\x00fuzz\x00"
ANY_KEY = "\x00any\x00"
_TOKEN_JSON = json.dumps(_TOKEN)


def schema_paths(model: type[BaseModel] | None) -> list[tuple[str | int, ...]]:
    """Every field path of a body model's JSON schema (``0`` for array items), up to 6 levels."""
    if model is None:
        return []
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    found: set[tuple[str | int, ...]] = set()

    def walk(node: Any, path: tuple[str | int, ...], seen: frozenset[str]) -> None:
        if not isinstance(node, dict) or len(path) > 6:
            return
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name not in seen:
                walk(defs.get(name), path, seen | {name})
            return
        for key in ("anyOf", "oneOf", "allOf"):
            for sub in node.get(key, []):
                walk(sub, path, seen)
        for name, prop in node.get("properties", {}).items():
            found.add((*path, name))
            walk(prop, (*path, name), seen)
        if isinstance(node.get("items"), dict):
            found.add((*path, 0))
            walk(node["items"], (*path, 0), seen)
        if isinstance(node.get("additionalProperties"), dict):
            found.add((*path, ANY_KEY))
            walk(node["additionalProperties"], (*path, ANY_KEY), seen)

    walk(schema, (), frozenset())
    return sorted(found, key=lambda p: [str(x) for x in p])


def inject(base: Any, path: tuple[str | int, ...]) -> Any:
    """``base`` with the value at ``path`` replaced by the placeholder (containers made as needed)."""
    if not path:
        return _TOKEN
    key, rest = path[0], path[1:]
    if isinstance(key, int):
        items = list(base) if isinstance(base, list) and base else [None]
        items[0] = inject(items[0], rest)
        return items
    obj = dict(base) if isinstance(base, dict) else {}
    if key == ANY_KEY:  # a map's values: the first existing entry (e.g. a real environment), else a new one
        key = next(iter(obj), "k")
    obj[key] = inject(obj.get(key), rest)
    return obj


def mutated(base: Any, path: tuple[str | int, ...], fragment: str) -> bytes:
    text = json.dumps(inject(base, path)).replace(_TOKEN_JSON, fragment, 1)
    return text.encode("utf-8", "surrogatepass")


def body_strategy(operation: Any, seed: Seed, model: type[BaseModel] | None) -> st.SearchStrategy[bytes]:
    whole = st.one_of(_JSON.map(lambda v: json.dumps(v).encode("utf-8", "surrogatepass")), _DEEP.map(str.encode), _RAW)
    paths = schema_paths(model)
    if not paths:
        return whole
    fixed = {n: seed.value(operation.path, n) for n in _PARAM.findall(operation.path)}
    bases = operation.as_strategy(GenerationMode.POSITIVE, path_parameters=fixed, headers=seed.headers).map(
        lambda case: case.body if isinstance(case.body, dict | list) else {}
    )
    targeted = st.builds(mutated, bases, st.sampled_from(paths), FRAGMENTS)
    bare = st.builds(mutated, st.just({}), st.sampled_from(paths), FRAGMENTS)
    return st.one_of(targeted, targeted, bare, whole)


_uniq = itertools.count(1)


def _u(prefix: str) -> str:
    return f"{prefix}{next(_uniq)}"


_COUNTRY = {"filters": [{"type": "user", "subType": "country", "comparator": "=", "values": ["DE"]}]}
_TARGET: dict[str, Any] = {
    "audience": {"filters": _COUNTRY},
    "distribution": [{"_variation": "fz", "percentage": 1}],
    "rollout": {
        "type": "gradual",
        "startPercentage": 0.1,
        "startDate": "2024-01-01T00:00:00Z",
        "stages": [{"type": "linear", "date": "2030-01-01T00:00:00Z", "percentage": 1}],
    },
}
_DEFINITION = {"type": "context", "field": "company.plan", "operator": "IS", "values": ["pro"]}
_D = "/organisations/applications/dimension"
METRIC = {"name": "M", "event": "fz", "dimension": "COUNT_PER_UNIQUE_USER", "optimize": "increase"}
WEBHOOK = {"name": "h", "url": "https://hooks.example.com/fz", "events": ["createdFeature"]}
WORKFLOW = {"featureApprovalWorkflow": {"enabled": True, "allowPublisherBypass": True, "defaultReviewers": []}}
PROPOSAL = {
    "path": "/v1/projects/fz/features/fz/configurations?environment=development",
    "method": "PATCH",
    "body": {"status": "active"},
}
_CR = "/v2/projects/{project}/features/{feature}/change-requests"


def _feature_body() -> dict[str, Any]:
    key = _u("f")
    return {
        "key": key,
        "name": "F",
        "variables": [{"key": key, "type": "JSON"}],
        "variations": [{"key": "fz", "name": "On", "variables": {key: {"a": 1}}}],
        "configurations": {"development": {"status": "active", "targets": [_TARGET]}},
        "settings": {"publicName": "F"},
        "staleness": {"a": 1},
    }


# A valid body for each write route in a seeded organisation (fresh keys each time, so that creates
# do not stop at a conflict before they reach the field under test).
_REFRESH: list[str] = []  # the owner's refresh token, set when the world is made
VALID: dict[tuple[str, str], Any] = {
    ("POST", "/users/create"): lambda: {
        "name": (n := _u("u")),
        "password": "correct-horse",
        "first_name": "F",
        "last_name": "L",
        "email": f"{n}@example.com",
    },
    ("POST", "/users/login"): lambda: {"name": "fuzz-owner", "password": "correct-horse"},
    ("POST", "/users/token/refresh"): lambda: {"refresh_token": _REFRESH[0]},
    ("POST", "/users/password"): lambda: {"current_password": "correct-horse", "new_password": "correct-horse"},
    ("POST", "/users/oauth/login"): lambda: {"code": "c", "state": "s"},
    ("POST", "/users/oauth/signup"): lambda: {"code": "c"},
    ("POST", "/organisations/create"): lambda: {"name": _u("o")},
    ("POST", "/organisations/request"): lambda: {"organisation_name": "x", "name": "n", "email": "a@b.example"},
    ("POST", "/organisations/applications/create"): lambda: {"application": _u("a")},
    ("POST", "/organisation/user/create"): lambda: {"user": "fuzz-outsider@example.com", "access": "read"},
    ("POST", "/organisation/user/update"): lambda: {"user": "fuzz-member@example.com", "access": "write"},
    ("POST", "/organisation/user/remove"): lambda: {"user": "fuzz-member@example.com"},
    ("POST", "/organisations/{organisation_name}/api-keys"): lambda: {"name": "k", "scope": "read"},
    ("PUT", "/projects/{projectId}/widget-config"): lambda: {"settings": {"theme": "dark"}},
    ("DELETE", "/projects/{projectId}/widget-config"): lambda: {},
    ("POST", "/projects/{projectId}/segments"): lambda: {"name": _u("s"), "definition": _DEFINITION},
    ("PATCH", "/projects/{projectId}/segments/{id}"): lambda: {"name": _u("s"), "definition": _DEFINITION},
    ("POST", "/projects/{projectId}/segments/{id}/publish"): lambda: {},
    ("DELETE", "/projects/{projectId}/segments/{id}"): lambda: {},
    ("POST", "/file"): lambda: {"file_path": _u("p"), "url": "https://cdn.example.com/x", "tag": "latest"},
    ("POST", "/file/bulk"): lambda: {
        "files": [{"file_path": _u("p"), "url": "https://cdn.example.com/x", "tag": "latest", "metadata": {}}],
        "skip_duplicates": True,
    },
    ("PATCH", "/file/{file_key}"): lambda: {"tag": "stable"},
    ("POST", "/packages"): lambda: {"index": "index.js", "tag": "beta", "files": ["fz.js@version:1"]},
    ("POST", f"{_D}/create"): lambda: {"dimension": _u("d"), "schema": {"type": "string"}, "description": "d"},
    ("PUT", f"{_D}/{{dimension_name}}"): lambda: {"position": 1, "change_reason": "x"},
    ("POST", f"{_D}/{{cohort_dimension_name}}/cohort/checkpoint"): lambda: {
        "name": _u("c"),
        "value": f"{next(_uniq)}.0.0",
        "comparator": "semver_ge",
    },
    ("POST", f"{_D}/{{cohort_dimension_name}}/checkpoint"): lambda: {
        "name": _u("c"),
        "value": f"{next(_uniq)}.0.0",
        "comparator": "semver_ge",
    },
    ("POST", f"{_D}/{{cohort_dimension_name}}/cohort/group"): lambda: {"name": _u("g"), "members": [_u("m")]},
    ("POST", f"{_D}/{{cohort_dimension_name}}/group"): lambda: {"name": _u("g"), "members": [_u("m")]},
    ("PUT", f"{_D}/{{cohort_dimension_name}}/cohort/group/priority"): lambda: {"priority_map": {"g1": 0}},
    ("PUT", f"{_D}/{{cohort_dimension_name}}/group/priority"): lambda: {"priority_map": {"g1": 0}},
    ("POST", "/organisations/applications/config/create"): lambda: {
        "config": {"version": "1.0", "boot_timeout": 100},
        "properties": {"a": 1},
        "tenant_info": {"a": 1},
    },
    ("POST", "/releases"): lambda: {
        "config": {"properties": {"a": 1}, "boot_timeout": 10},
        "package": {"properties": {"a": 1}, "important": ["fz.js@version:1"]},
        "dimensions": {"fzd": _u("x")},
    },
    ("POST", "/releases/{release_id}/ramp"): lambda: {"traffic_percentage": 10},
    ("POST", "/releases/{release_id}/conclude"): lambda: {"chosen_variant": "control"},
    ("POST", "/releases/{release_id}/discard"): lambda: {},
    ("POST", "/v1/projects"): lambda: {"name": "N", "key": _u("p"), "settings": {"edgeDB": {"enabled": True}}},
    ("PATCH", "/v1/projects/{project}"): lambda: {"name": "N", "settings": {"optIn": {"enabled": True}}},
    ("POST", "/v1/projects/{project}/environments"): lambda: {"name": "S", "key": _u("e"), "type": "staging"},
    ("PATCH", "/v1/projects/{project}/environments/{environment}"): lambda: {"name": "D", "settings": {}},
    ("POST", "/v1/projects/{project}/environments/{environment}/keys"): lambda: {"server": True},
    ("POST", "/v1/projects/{project}/features"): _feature_body,
    ("POST", "/v1/projects/{project}/features/multiple"): lambda: [_feature_body()],
    ("PATCH", "/v1/projects/{project}/features/{feature}"): lambda: {
        "name": "F",
        "configurations": {"development": {"status": "active", "targets": [_TARGET]}},
    },
    ("PATCH", "/v1/projects/{project}/features/{feature}/status"): lambda: {"status": "active"},
    ("POST", "/v1/projects/{project}/features/{feature}/variations"): lambda: {
        "key": _u("v"),
        "name": "V",
        "variables": {"fz": True},
    },
    ("PATCH", "/v1/projects/{project}/features/{feature}/variations/{key}"): lambda: {
        "name": "V",
        "variables": {"fz": False},
    },
    ("POST", "/v1/projects/{project}/variables"): lambda: {"key": _u("v"), "type": "String"},
    ("PATCH", "/v1/projects/{project}/variables/{key}"): lambda: {"description": "d"},
    ("PATCH", "/v1/projects/{project}/variables/{key}/status"): lambda: {"status": "active"},
    ("PATCH", "/v1/projects/{project}/features/{feature}/configurations"): lambda: {
        "status": "active",
        "targets": [_TARGET],
    },
    ("POST", "/v1/projects/{project}/audiences"): lambda: {
        "name": "A",
        "key": _u("a"),
        "filters": _COUNTRY,
    },
    ("PATCH", "/v1/projects/{project}/audiences/{key}"): lambda: {
        "filters": {"filters": [{"type": "user", "subType": "country", "comparator": "=", "values": ["DE"]}]}
    },
    ("PATCH", "/v1/semantic/projects/{project}/audiences/{key}"): lambda: {
        "instructions": [{"op": "addFilterValues", "action": {"filterIndex": "0", "values": ["AT"]}}]
    },
    ("POST", "/v1/projects/{project}/customProperties"): lambda: {
        "name": "P",
        "key": (k := _u("c")),
        "type": "String",
        "propertyKey": k,
    },
    ("PATCH", "/v1/projects/{project}/customProperties/{key}"): lambda: {"name": "P"},
    # shareyourthoughtswith.me, in an order that keeps the seeded post published until the end.
    ("POST", "/admin/api-keys"): lambda: {"name": "k", "scope": "submit"},
    ("POST", "/admin/posts"): lambda: {
        "slug": _u("p"),
        "title": "T",
        "definition": {"steps": [{"id": "a", "label": "A", "kind": "rating", "min": 0, "max": 10}]},
    },
    ("POST", "/admin/posts/{slug}/versions"): lambda: {
        "definition": {"steps": [{"id": "fz", "label": "Fz?", "kind": "yes_no"}]}
    },
    ("POST", "/admin/posts/{slug}/publish"): lambda: {},
    ("POST", "/api/v1/feedback"): lambda: {"post_slug": "fz", "answers": [{"step_id": "fz", "answer": "no"}]},
    ("POST", "/api/v1/telemetry"): lambda: {"event_type": "page_hit", "payload": {"a": [1, 2]}},
    ("POST", "/admin/feedback/{feedback_id}/hide"): lambda: {"change_reason": "spam"},
    ("POST", "/admin/feedback/{feedback_id}/unhide"): lambda: {},
    ("POST", "/admin/posts/{slug}/unpublish"): lambda: {},
    # DevCycle v2 features, SDK keys at DevCycle's paths, integrations.
    ("POST", "/v1/projects/{project}/environments/{environment}/sdk-keys"): lambda: {"mobile": True},
    ("POST", "/v2/projects/{project}/features"): _feature_body,
    ("PATCH", "/v2/projects/{project}/features/{feature}"): lambda: {"description": "v2"},
    ("PATCH", "/v2/projects/{project}/features/{feature}/staleness"): lambda: {"snoozedUntil": "2030-01-01T00:00:00Z"},
    ("PATCH", "/v2/projects/{project}/features/{feature}/summary"): lambda: {"markdown": "# fz"},
    # Complete, so that its static configuration exists for the two routes after.
    ("PATCH", "/v2/projects/{project}/features/{feature}/status"): lambda: {
        "status": "complete",
        "staticVariation": "fz",
    },
    ("PATCH", "/v1/projects/{project}/features/{feature}/static-configuration"): lambda: {"description": "s"},
    ("PATCH", "/v2/projects/{project}/features/{feature}/static-configuration"): lambda: {
        "variables": {"fz": False},
        "environments": {"development": {"status": "active"}},
    },
    ("POST", "/v1/projects/{project}/features/{feature}/integrations/jira/issues"): lambda: {"issueId": "FZ-1"},
    ("POST", "/v1/integrations/dynatrace"): lambda: {
        "dynatraceEnvironmentId": "fz",
        "accessToken": "fz-token",
        "environmentUrl": "https://fz.live",
    },
    # DevCycle project settings, webhooks, metrics, self-targeting, drafts and change requests.
    ("PATCH", "/v1/projects/{project}/settings"): lambda: {"settings": {"edgeDB": {"enabled": True}}},
    ("PATCH", "/v1/projects/{project}/settings/protected"): lambda: {"settings": WORKFLOW},
    ("POST", "/v1/projects/{project}/webhooks"): lambda: WEBHOOK,
    ("PATCH", "/v1/projects/{project}/webhooks/{id}"): lambda: {"name": "renamed"},
    ("POST", "/v1/projects/{project}/metrics"): lambda: {**METRIC, "key": _u("m")},
    ("PATCH", "/v1/projects/{project}/metrics/{key}"): lambda: {"name": "N", "optimize": "decrease"},
    ("POST", "/v1/projects/{project}/metric-associations"): lambda: {"metric": "fz", "feature": "fz"},
    ("DELETE", "/v1/projects/{project}/metric-associations"): lambda: {"metric": "fz", "feature": "fz"},
    ("PATCH", "/v1/projects/{project}/userProfile/current"): lambda: {"dvcUserId": _u("dvc")},
    ("PUT", "/v1/projects/{project}/features/{feature}/overrides/current"): lambda: {
        "environment": "development",
        "variation": "fz",
    },
    ("POST", "/v1/projects/{project}/features/{feature}/evaluate"): lambda: {
        "context": {"user": {"id": "fz"}},
        "configuration": {"status": "active", "targets": [_TARGET]},
    },
    ("POST", _CR): lambda: PROPOSAL,
}


# Bodies that name the seed's own resources; run after VALID's, in this order (deletes last).
_B = "/projects/{projectId}"
SEEDED: dict[tuple[str, str], Callable[[Seed], Any]] = {
    ("POST", f"{_B}/feature-request-categories"): lambda seed: {"name": _u("c")},
    ("PATCH", f"{_B}/feature-request-categories/{{id}}"): lambda seed: {"position": 3},
    ("POST", f"{_B}/feature-requests"): lambda seed: {
        "title": "T",
        "categoryId": seed.ids["feature-request-categories"],
    },
    ("PATCH", f"{_B}/feature-requests/{{id}}"): lambda seed: {"reviewStatus": "approved", "status": "planned"},
    ("DELETE", f"{_B}/feature-requests/{{id}}/comments/{{commentId}}"): lambda seed: {},
    ("DELETE", f"{_B}/feature-requests/{{id}}"): lambda seed: {},
    ("POST", f"{_B}/roadmap"): lambda seed: {"title": "T", "visibility": "internal_only"},
    ("PUT", f"{_B}/roadmap/order"): lambda seed: {"ids": [seed.ids["roadmap"]]},
    ("PATCH", f"{_B}/roadmap/{{id}}"): lambda seed: {
        "visibility": "audience_targeted",
        "audience": {"mode": "condition", "filter": {"type": "constant", "value": True}},
    },
    ("DELETE", f"{_B}/roadmap/{{id}}"): lambda seed: {},
    ("POST", f"{_B}/changelog"): lambda seed: {"title": "T", "status": "published"},
    ("PATCH", f"{_B}/changelog/{{id}}"): lambda seed: {
        "audience": {"mode": "segment", "segmentId": seed.ids["segments"]}
    },
    ("DELETE", f"{_B}/changelog/{{id}}"): lambda seed: {},
    ("DELETE", f"{_B}/feature-request-categories/{{id}}"): lambda seed: {},
    # The seeded change request: submitted, approved, applied (on a seed of its own, see below).
    ("PATCH", _CR + "/{id}/submit"): lambda seed: {"description": "d", "reviewers": [seed.owner_id]},
    ("PATCH", _CR + "/{id}/review"): lambda seed: {"action": "approved", "comment": "ok"},
    ("PATCH", _CR + "/{id}/apply"): lambda seed: {"description": "go", "action": "applied"},
}


def query_params(path: str) -> dict[str, str]:
    """The query a route with a body needs besides it: the environment a configuration is of."""
    return {"environment": "development"} if path.endswith(("/configurations", "/evaluate")) else {}


def valid_body(method: str, path: str, seed: Seed) -> Any:
    """A body the route accepts for ``seed`` (an empty object where none is listed)."""
    if (method, path) in SEEDED:
        return SEEDED[(method, path)](seed)
    return VALID.get((method, path), dict)()


def _forget_login_attempts(services: Any) -> None:
    """Undo the login backoff that fuzzing /users/login earned the owner (in the process's memory,
    or on PostgreSQL in the tables every replica shares)."""
    if isinstance(services.login_guard, SharedLoginGuard):
        with services.store.transaction(serialized=False) as db:
            db.execute("DELETE FROM login_hits")
            db.execute("DELETE FROM login_backoff")
    else:
        services.login_guard = LoginGuard(services.settings.login_attempts_per_minute)


def test_valid_bodies_are_accepted(world: World) -> None:
    """The sweep's bases are real requests: each one succeeds (in one seeded organisation, in order;
    discarding needs a release that the earlier ramp did not start; applying a change request needs
    its feature unchanged since it was written)."""
    shared, flow = world.seed(), world.seed()
    services = world.client.app.state.services  # type: ignore[attr-defined]
    _forget_login_attempts(services)  # earlier fuzzing
    for method, path in [*VALID, *SEEDED]:
        seed = world.seed() if path.endswith("/discard") else flow if "/change-requests/" in path else shared
        url = seed.url(path)
        params = query_params(path)
        body = valid_body(method, path, seed)
        r = world.client.request(method, url, headers=world.headers(seed, method, path), params=params, json=body)
        if "/oauth/" in path:  # no OIDC issuer is configured here: a valid request gets the 400 that says so
            assert_error(r, 400, "validation_failed")
            assert error_of(r.json())["details"][0]["field"] == "provider"
            continue
        assert r.status_code in (200, 201, 204), f"{method} {path}: {r.text}"
    with_body = {op for op in WRITES if SPECS[op].body is not None}
    assert set(VALID) | set(SEEDED) == with_body


def test_schema_paths_reach_nested_fields() -> None:
    paths = schema_paths(SPECS[("POST", "/releases")].body)
    assert ("package", "properties") in paths and ("config", "properties") in paths and ("resources", 0) in paths
    assert ("metadata",) in schema_paths(SPECS[("POST", "/file")].body)
    assert (0, "configurations", ANY_KEY, "targets", 0, "audience", "filters") in schema_paths(
        SPECS[("POST", "/v1/projects/{project}/features/multiple")].body
    )
    assert mutated({"a": 1}, ("b", 0), "[[[]]]") == b'{"a": 1, "b": [[[[]]]]}'
    assert mutated({"m": {"x": 1}}, ("m", ANY_KEY), "2") == b'{"m": {"x": 2}}'


@pytest.mark.parametrize(("method", "path"), WRITES, ids=[f"{m} {p}" for m, p in WRITES])
def test_random_json_bodies(world: World, schema: Any, method: str, path: str) -> None:
    seed = world.seed()
    spec = SPECS[(method, path)]
    url = seed.url(path)
    params = query_params(path)
    label = f"{method} {path}"

    headers = {**world.headers(seed, method, path), "content-type": "application/json"}

    def send(raw: bytes) -> None:
        response = world.client.request(method, url, headers=headers, params=params, content=raw)
        assert_no_failure(response, f"{label} {raw[:2000]!r}")

    # Every field path gets each of the values that are known to break naive code ...
    for field_path in schema_paths(spec.body):
        for fragment in SWEEP if world.postgresql else NESTING_SWEEP + SWEEP:
            send(mutated(valid_body(method, path, seed), field_path, fragment))

    # ... and then hypothesis explores.
    @fuzz_settings(RANDOM_BODY_EXAMPLES)
    @given(raw=body_strategy(schema[path][method], seed, spec.body))
    def run(raw: bytes) -> None:
        send(raw)

    run()
