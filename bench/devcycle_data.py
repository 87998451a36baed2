"""DevCycle-format data: features whose targets use every target kind, and users to bucket.

Used by the DevCycle SDK end-to-end test (``tests/e2e/test_devcycle_sdks.py``) and the DevCycle
benchmark (``bench.devcycle``). :func:`features` cycles through :data:`KINDS`, so any ``n`` of
at least ``len(KINDS)`` covers them all: audiences on user fields and on customData of every
type, version comparisons, a saved audience (``audienceMatch``), distributions over 2 and 3
variations, schedule, gradual and stepped rollouts (whose current percentage moves too slowly
to change anyone's bucket during a run), ``bucketingKey`` on a customData field some users
lack, several targets in order, and ``sdkVisibility`` (a feature hidden from client SDKs).
Every feature has variables of the four types (String, Number, Boolean, JSON; or fewer, whose
type rotates with the feature), with a different value in each variation. Everything is
seeded: the same ``n`` and seed give the same data.

Gradual rollouts come twice: one whose linear stage is running (:data:`INTERPOLATING`) and one
whose linear stage was reached. The first is where DevCycle's own implementations disagree.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

# The benchmark's dataset (bench.stack) and its size: W2's 350 flags, one variable each (as a
# Reflag flag has one value; the types still rotate).
DATASET = "devcycle-w2"
W2_FEATURES = 350
W2_VARIABLES = 1
# Custom properties declared through the API (so query strings are read with these types).
CUSTOM_PROPERTIES = {"plan": "String", "seats": "Number", "beta": "Boolean", "org": "String"}
PLANS = ("free", "starter", "pro", "enterprise")
COUNTRIES = ("DE", "US", "FR", "GB", "JP", "BR")
DOMAINS = ("acme.com", "example.org", "initech.io")
SAVED_AUDIENCE = "germans-or-old-apps"
HIDDEN_KIND = "hidden-from-clients"
# A gradual rollout inside a linear stage: @devcycle/bucketing (and the edge) serve
# ``current + (next - current) * elapsed``; the nodejs-server-sdk's WASM bucketing
# (bucketing-assembly-script 1.42.8) computes ``(current + (next - current)) * elapsed``
# (misplaced parentheses), so while a linear stage runs the two serve different users.
INTERPOLATING = "gradual-linear"

KINDS = (
    "two-way-split",
    "three-way-split",
    "plan-string",
    "seats-number",
    "beta-boolean",
    "app-version",
    "email-country",
    "org-exists",
    "schedule",
    INTERPOLATING,
    "gradual-reached",
    "stepped",
    "bucketing-key",
    "audience-match",
    HIDDEN_KIND,
    "user-id-prefix",
    "targets-in-order",
    "seats-and-plan-text",
)
ALL_USERS: dict[str, Any] = {"operator": "and", "filters": [{"type": "all"}]}


def _iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _user(sub_type: str, comparator: str, values: list[Any]) -> dict[str, Any]:
    return {"type": "user", "subType": sub_type, "comparator": comparator, "values": values}


def _custom(key: str, kind: str, comparator: str, values: list[Any]) -> dict[str, Any]:
    return {
        "type": "user",
        "subType": "customData",
        "dataKey": key,
        "dataKeyType": kind,
        "comparator": comparator,
        "values": values,
    }


def _all(*filters: dict[str, Any]) -> dict[str, Any]:
    return {"operator": "and", "filters": list(filters)}


def _any(*filters: dict[str, Any]) -> dict[str, Any]:
    return {"operator": "or", "filters": list(filters)}


def _target(
    filters: dict[str, Any], split: list[tuple[str, float]], name: str = "Target", **extra: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "audience": {"name": name, "filters": filters},
        "distribution": [{"_variation": key, "percentage": p} for key, p in split],
        **extra,
    }


def everyone(variation: str) -> dict[str, Any]:
    """A target serving ``variation`` to every user."""
    return _target(ALL_USERS, [(variation, 1.0)], "Everyone")


def _targets(kind: str, rng: random.Random) -> list[dict[str, Any]]:
    on = [("on", 1.0)]
    if kind == "two-way-split":
        return [_target(ALL_USERS, [("on", 0.5), ("off", 0.5)])]
    if kind == "three-way-split":
        return [_target(ALL_USERS, [("on", 0.2), ("off", 0.3), ("third", 0.5)])]
    if kind == "plan-string":
        return [_target(_all(_custom("plan", "String", "=", ["pro", "enterprise"])), on)]
    if kind == "seats-number":
        return [_target(_all(_custom("seats", "Number", ">", [rng.choice([20, 50, 80])])), on)]
    if kind == "beta-boolean":
        return [_target(_all(_custom("beta", "Boolean", "=", [True])), [("on", 0.6), ("off", 0.4)])]
    if kind == "app-version":
        return [_target(_all(_user("appVersion", rng.choice([">=", "<", ">"]), ["2.1.0"])), on)]
    if kind == "email-country":
        return [_target(_all(_user("email", "endWith", ["@acme.com"]), _user("country", "=", ["DE", "FR", "GB"])), on)]
    if kind == "org-exists":
        return [_target(_all(_custom("org", "String", "!exist", [])), on)]
    if kind == "schedule":
        return [
            _target(ALL_USERS, on, "Later", rollout={"type": "schedule", "startDate": _iso(timedelta(days=30))}),
            _target(
                ALL_USERS, [("off", 1.0)], "Since", rollout={"type": "schedule", "startDate": _iso(-timedelta(days=1))}
            ),
        ]
    if kind == INTERPOLATING:
        rollout = {
            "type": "gradual",
            "startPercentage": 0.2,
            "startDate": _iso(-timedelta(days=10)),
            "stages": [{"type": "linear", "date": _iso(timedelta(days=3000)), "percentage": 0.9}],
        }
        return [_target(ALL_USERS, [("on", 0.5), ("third", 0.5)], rollout=rollout)]
    if kind == "gradual-reached":
        rollout = {
            "type": "gradual",
            "startPercentage": 0.1,
            "startDate": _iso(-timedelta(days=20)),
            "stages": [
                {"type": "linear", "date": _iso(-timedelta(days=5)), "percentage": 0.65},
                {"type": "discrete", "date": _iso(timedelta(days=40)), "percentage": 1},
            ],
        }
        return [_target(ALL_USERS, [("on", 0.4), ("off", 0.6)], rollout=rollout)]
    if kind == "stepped":
        rollout = {
            "type": "stepped",
            "startPercentage": 0.1,
            "startDate": _iso(-timedelta(days=10)),
            "stages": [
                {"type": "discrete", "date": _iso(-timedelta(days=2)), "percentage": 0.45},
                {"type": "discrete", "date": _iso(timedelta(days=30)), "percentage": 0.9},
            ],
        }
        return [_target(ALL_USERS, on, rollout=rollout)]
    if kind == "bucketing-key":
        rollout = {"type": "schedule", "startDate": _iso(-timedelta(days=1))}
        return [_target(ALL_USERS, [("on", 0.5), ("off", 0.5)], bucketingKey="org", rollout=rollout)]
    if kind == "audience-match":
        match = {"type": "audienceMatch", "comparator": "=", "_audiences": [SAVED_AUDIENCE]}
        return [_target(_all(match), on)]
    if kind == HIDDEN_KIND:
        return [_target(ALL_USERS, [("on", 0.7), ("off", 0.3)])]
    if kind == "user-id-prefix":
        return [_target(_all(_user("user_id", "startWith", ["user-1", "user-2"])), on)]
    if kind == "targets-in-order":
        return [
            _target(_all(_custom("plan", "String", "=", ["free"])), [("off", 1.0)], "Free"),
            _target(ALL_USERS, [("on", 0.25), ("off", 0.25), ("third", 0.5)], "Everyone"),
        ]
    if kind == "seats-and-plan-text":
        return [
            _target(
                _any(_custom("seats", "Number", "<=", [10]), _custom("plan", "String", "contain", ["ter"])),
                [("third", 1.0)],
            )
        ]
    raise ValueError(kind)


def kind_of(i: int) -> str:
    """The target kind of feature ``i``."""
    return KINDS[i % len(KINDS)]


TYPES = ("String", "Number", "Boolean", "JSON")


def feature(i: int, rng: random.Random, env: str, variables: int = len(TYPES)) -> dict[str, Any]:
    """Feature ``i`` (kind :func:`kind_of`) with its ``env`` configuration and ``variables``
    variables: all four types, or fewer starting at type ``i % 4`` (so consecutive features
    still cover every type)."""
    kind = kind_of(i)
    key = f"dvc-{i}"
    values = {
        "on": {"String": "blue", "Number": 1 + i, "Boolean": True, "JSON": {"size": i, "tags": ["a"]}},
        "off": {"String": "red", "Number": -i, "Boolean": False, "JSON": {"size": 0}},
        "third": {"String": "green", "Number": 0.5 + i, "Boolean": False, "JSON": {"size": i, "nested": {"ok": True}}},
    }
    types = [TYPES[(i + k) % len(TYPES)] for k in range(variables)]
    names = {kind_: f"{key}-{kind_.lower()}" for kind_ in types}
    body: dict[str, Any] = {
        "key": key,
        "name": f"{kind} {i}",
        "type": "experiment" if "split" in kind else "release",
        "variables": [{"key": names[t], "type": t} for t in types],
        "variations": [
            {"key": variation, "name": variation.title(), "variables": {names[t]: vals[t] for t in types}}
            for variation, vals in values.items()
        ],
        "configurations": {env: {"status": "active", "targets": _targets(kind, rng)}},
    }
    if kind == HIDDEN_KIND:
        body["sdkVisibility"] = {"client": False, "mobile": True, "server": True}
    return body


def features(n: int, env: str, seed: int = 12, variables: int = len(TYPES)) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [feature(i, rng, env, variables) for i in range(n)]


def users(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """DevCycle users as an SDK gets them: id, email, country, appVersion, typed customData."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        custom: dict[str, Any] = {
            "plan": rng.choice(PLANS),
            "seats": rng.choice([rng.randint(0, 150), rng.randint(0, 150) + 0.5]),
            "beta": rng.random() < 0.5,
        }
        if rng.random() < 0.7:
            custom["org"] = f"org-{rng.randint(0, 40)}"
        user: dict[str, Any] = {"user_id": f"user-{i}", "customData": custom}
        if rng.random() < 0.85:
            user["email"] = f"person{i}@{rng.choice(DOMAINS)}"
        if rng.random() < 0.85:
            user["country"] = rng.choice(COUNTRIES)
        if rng.random() < 0.85:
            user["appVersion"] = f"{rng.randint(1, 3)}.{rng.randint(0, 4)}.{rng.randint(0, 9)}"
        out.append(user)
    return out


def load(
    admin: httpx.Client, auth: dict[str, str], project: str, env: str, n: int, variables: int = len(TYPES)
) -> None:
    """Declare the custom properties and the saved audience, then create ``n`` features with
    ``variables`` variables each."""
    for key, kind in CUSTOM_PROPERTIES.items():
        body = {"name": key, "key": key, "type": kind, "propertyKey": key}
        r = admin.post(f"/v1/projects/{project}/customProperties", json=body, headers=auth)
        if r.status_code != 201:
            raise RuntimeError(f"custom property {key}: {r.status_code} {r.text}")
    audience = {
        "name": "Germans or old apps",
        "key": SAVED_AUDIENCE,
        "filters": _any(_user("country", "=", ["DE"]), _user("appVersion", "<", ["1.5"])),
    }
    r = admin.post(f"/v1/projects/{project}/audiences", json=audience, headers=auth)
    if r.status_code != 201:
        raise RuntimeError(f"audience: {r.status_code} {r.text}")
    items = features(n, env, variables=variables)
    for start in range(0, n, 100):
        r = admin.post(f"/v1/projects/{project}/features/multiple", json=items[start : start + 100], headers=auth)
        if r.status_code != 201:
            raise RuntimeError(f"features {start}..: {r.status_code} {r.text[:500]}")
