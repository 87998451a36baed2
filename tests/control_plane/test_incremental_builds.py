"""A write builds only what it changed (``control_plane.incremental``), and what it publishes is
byte for byte what a whole build of the database publishes, after any sequence of writes.

Random sequences of feature writes (create, configure in Reflag and DevCycle formats, rename,
visibility, status, delete) mixed with writes that touch no feature (audiences, custom
properties, SDK keys, overrides, environments, project settings, Releaseo, Airborne) or one
variable (create, rename, retype, archive, delete, move to another feature), on both stores:
after every write, every value LMDB holds (without its version stamp) equals a whole build of
every project from the database (``publisher.project_state`` without documents), and no value
is missing or left over; and what the builder keeps for the next write equals a whole build of
each environment. The builds must have been incremental most of the time.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

import evaluator
from contract.framing import decode
from contract.store import TABLES, ChangeSet, unstamped
from control_plane.app import create_app
from control_plane.build_generations import advance, current
from control_plane.dialect import Connection
from control_plane.errors import ApiError
from control_plane.incremental import Builder
from control_plane.publisher import Publisher, project_state
from control_plane.settings import Settings
from control_plane.snapshots import build_environment_state
from control_plane.store import Store
from tests.control_plane.conftest import Api
from tests.control_plane.devcycle_support import ALL, PRO, Project, target
from tests.control_plane.routes.devcycle.support import setup

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

ENVS = ("development", "production")
KEYS = tuple(f"f{i}" for i in range(6))
TIER = {"type": "user", "subType": "customData", "dataKey": "tier", "comparator": "=", "values": ["gold"]}
SEATS = {"type": "user", "subType": "customData", "dataKey": "seats", "comparator": ">", "values": [3]}
# A rollout that started long ago: a definition built from the clock, which stays the same.
PAST = {"type": "schedule", "startDate": "2020-01-01T00:00:00Z"}
OPS = ("create", "create", "reflag", "devcycle", "devcycle", "rename", "visibility", "status", "variation", "delete")
# Writes that touch no feature: the project as a whole (audiences), or only what the DevCycle
# section reads besides the features, or nothing a build reads (SDK keys, Releaseo, Airborne);
# and writes of one variable (its feature) or of the project's row (settings, key).
PROJECT_OPS = (
    "audience",
    "audience",
    "audience",
    "property",
    "sdk-key",
    "profile",
    "override",
    "environment",
    "environment-key",
    "variable",
    "variable",
    "variable",
    "settings",
    "releaseo",
    "releaseo",
    "airborne",
)


def _feature(key: str, rng: random.Random) -> dict[str, Any]:
    body: dict[str, Any] = {
        "key": key,
        "name": key,
        "variables": [{"key": f"{key}-v{rng.randrange(3)}", "type": "Boolean"}],
    }
    var = body["variables"][0]["key"]
    body["variations"] = [
        {"key": "on", "name": "On", "variables": {var: True}},
        {"key": "off", "name": "Off", "variables": {var: False}},
    ]
    if rng.random() < 0.3:
        body["sdkVisibility"] = {"client": False}
    if rng.random() < 0.5:
        body["configurations"] = {rng.choice(ENVS): _reflag(rng)}
    return body


def _reflag(rng: random.Random) -> dict[str, Any]:
    plan = {"type": "context", "field": "company.plan", "operator": "IS", "values": [rng.choice(["free", "pro"])]}
    rules = [{"filter": plan}] if rng.random() < 0.7 else [{"filter": {"type": "constant", "value": True}}]
    return {"status": rng.choice(["active", "active", "inactive"]), "targeting": {"rules": rules}}


def _devcycle(rng: random.Random) -> dict[str, Any]:
    audience = rng.choice([ALL, PRO, {"operator": "and", "filters": [TIER]}, {"operator": "or", "filters": [SEATS]}])
    chosen = target(audience)
    if rng.random() < 0.3:
        chosen["rollout"] = PAST
    return {"status": rng.choice(["active", "active", "inactive"]), "targets": [chosen]}


def _write(p: Project, rng: random.Random, existing: list[str], step: int) -> None:
    """One random write; refusals (a key taken, a variation in use) are fine, errors are not."""
    op = rng.choice(OPS)
    if not existing or op == "create":
        key = rng.choice([k for k in KEYS if k not in existing] or KEYS)
        r = p.post("/features", _feature(key, rng))
    elif op == "reflag":
        r = p.configure(rng.choice(existing), rng.choice(ENVS), _reflag(rng))
    elif op == "devcycle":
        r = p.configure(rng.choice(existing), rng.choice(ENVS), _devcycle(rng))
    elif op == "rename":
        free = [k for k in KEYS if k not in existing]
        r = p.patch(f"/features/{rng.choice(existing)}", {"key": rng.choice(free)} if free else {"name": "n"})
    elif op == "visibility":
        r = p.patch(f"/features/{rng.choice(existing)}", {"sdkVisibility": {"mobile": rng.random() < 0.5}})
    elif op == "status":
        body = {"status": "complete", "staticVariation": "on"} if rng.random() < 0.5 else {"status": "active"}
        r = p.patch(f"/features/{rng.choice(existing)}/status", body)
    elif op == "variation":
        r = p.post(f"/features/{rng.choice(existing)}/variations", {"key": f"v{step}", "name": f"V{step}"})
    else:
        r = p.delete(f"/features/{rng.choice(existing)}")
    assert r.status_code < 500, r.text
    if step % 2 == 1:
        _project_write(p, rng, existing, step)


def _project_write(
    p: Project, rng: random.Random, existing: list[str], step: int, ops: tuple[str, ...] = PROJECT_OPS
) -> str | None:
    """One random write that changes no feature, or one variable (then its feature); refusals
    are fine, errors are not. The operation, when the write was accepted."""
    op = rng.choice(ops)
    if op == "audience":
        r = _audience_write(p, rng, step)
    elif op == "property":
        key = rng.choice(["seats", "plan"])
        if rng.random() < 0.3:
            r = p.delete(f"/customProperties/{key}")
        else:
            body = {"name": key, "key": key, "type": rng.choice(["Number", "String"]), "propertyKey": key}
            r = p.post("/customProperties", body)
            if r.status_code == 409:
                r = p.patch(f"/customProperties/{key}", {"type": body["type"]})
    elif op == "sdk-key":
        r = p.post(f"/environments/{rng.choice(ENVS)}/sdk-keys", {"server": True})
    elif op == "profile":
        r = p.patch("/userProfile/current", {"dvcUserId": rng.choice(["u1", "u2"])})
    elif op == "override":
        if not existing:
            return None
        path = f"/features/{rng.choice(existing)}/overrides/current"
        env = rng.choice(ENVS)
        if rng.random() < 0.3:
            r = p.delete(path, environment=env)
        else:
            r = p.api.client.put(p.url + path, json={"environment": env, "variation": "on"}, headers=p.h)
    elif op == "variable":
        r = _variable_write(p, rng, existing, step)
    elif op == "settings":
        r = _settings_write(p, rng, step)
    elif op == "releaseo":
        r = _releaseo_write(p, rng, step)
    elif op == "airborne":
        r = _airborne_write(p, rng, step)
    elif op == "environment":
        if "qa" in p.environments:
            r = p.delete(f"/environments/{p.environments.pop('qa')['_id']}")
        else:
            r = p.post("/environments", {"name": "QA", "key": f"qa{step}", "type": "staging"})
            if r.status_code == 201:
                p.environments["qa"] = r.json()
    else:
        if "qa" not in p.environments:
            return None
        r = p.patch(f"/environments/{p.environments['qa']['_id']}", {"key": f"qa{step}"})
    assert r.status_code < 500, r.text
    return op if r.status_code < 300 else None


def _variable_write(p: Project, rng: random.Random, existing: list[str], step: int) -> Any:
    """Create (in a feature or in none), rename, retype, archive, delete a variable, or move one
    to another feature (detached by its feature's update, attached by the other's)."""
    variables = p.get("/variables").json()
    action = rng.choice(["create", "rename", "type", "status", "delete", "move"]) if variables else "create"
    if action == "create":
        body: dict[str, Any] = {"key": f"x{step}", "type": rng.choice(["Boolean", "String"])}
        if existing and rng.random() < 0.7:
            body["_feature"] = rng.choice(existing)
        return p.post("/variables", body)
    v = rng.choice(variables)
    if action == "rename":
        return p.patch(f"/variables/{v['key']}", {"key": f"{v['key'].split('.')[0]}.{step}"})
    if action == "type":
        # Refused when the feature's values are of the other type; served as JSON otherwise.
        return p.patch(f"/variables/{v['key']}", {"type": rng.choice(["Boolean", "String", "JSON"])})
    if action == "status":
        return p.patch(f"/variables/{v['key']}/status", {"status": rng.choice(["archived", "active"])})
    features = {f["_id"]: f for f in p.get("/features").json()}
    others = [f for fid, f in features.items() if fid != v["_feature"]]
    if action == "delete" or not others:
        return p.delete(f"/variables/{v['key']}")
    if v["_feature"] in features:
        kept = [x for x in features[v["_feature"]]["variables"] if x["key"] != v["key"]]
        r = p.patch(f"/features/{features[v['_feature']]['key']}", {"variables": _fields(kept)})
        assert r.status_code < 500, r.text
    other = rng.choice(others)
    return p.patch(f"/features/{other['key']}", {"variables": _fields([*other["variables"], v])})


def _fields(variables: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"key": v["key"], "type": v["type"]} for v in variables]


def _settings_write(p: Project, rng: random.Random, step: int) -> Any:
    """A project setting DevCycle targets read (passthrough rollouts), one only its config
    carries (opt-in), one no build reads (staleness, the description), or the project's key."""
    action = rng.choice(["passthrough", "passthrough", "opt-in", "staleness", "description", "key"])
    if action == "passthrough":
        body: dict[str, Any] = {"disablePassthroughRollouts": rng.random() < 0.5}
        return p.patch("/settings", {"settings": body})
    if action == "opt-in":
        return p.patch("/settings", {"settings": {"optIn": {"enabled": rng.random() < 0.5}}})
    if action == "staleness":
        return p.patch("/settings/protected", {"settings": {"staleness": {"enabled": rng.random() < 0.5}}})
    if action == "description":
        return p.patch("", {"description": f"d{step}"})
    key = "app" if p.key != "app" else "app2"
    r = p.patch("", {"key": key})
    if r.status_code == 200:
        p.key = key
    return r


def _releaseo_write(p: Project, rng: random.Random, step: int) -> Any:
    """A widget, changelog entry (to a segment's snapshot or everyone), category, feature
    request, roadmap item or segment of the same project."""
    base, h = f"/projects/{p.key}", {**p.h, "x-organisation": p.organisation}
    client = p.api.client
    action = rng.choice(["widget", "changelog", "changelog", "category", "request", "roadmap", "segment"])
    if action == "widget":
        if rng.random() < 0.2:
            return client.delete(base + "/widget-config", headers=h)
        return client.put(base + "/widget-config", json={"settings": {"theme": f"t{step}"}}, headers=h)
    if action == "changelog":
        entries = client.get(base + "/changelog", headers=h).json()["items"]
        if entries and rng.random() < 0.5:
            entry = rng.choice(entries)["id"]
            if rng.random() < 0.3:
                return client.delete(f"{base}/changelog/{entry}", json={}, headers=h)
            return client.patch(f"{base}/changelog/{entry}", json={"status": "published"}, headers=h)
        body: dict[str, Any] = {"title": f"c{step}", "status": rng.choice(["draft", "published"])}
        segments = client.get(base + "/segments", headers=h).json()["items"]
        published = [s for s in segments if s["published"] is not None]
        if published and rng.random() < 0.5:
            body["audience"] = {"mode": "segment", "segmentId": rng.choice(published)["id"]}
        return client.post(base + "/changelog", json=body, headers=h)
    if action == "category":
        return client.post(base + "/feature-request-categories", json={"name": f"k{step}"}, headers=h)
    if action == "request":
        return client.post(base + "/feature-requests", json={"title": f"r{step}"}, headers=h)
    if action == "roadmap":
        return client.post(base + "/roadmap", json={"title": f"m{step}"}, headers=h)
    plan = {"type": "context", "field": "company.plan", "operator": "IS", "values": ["pro"]}
    r = client.post(base + "/segments", json={"name": f"s{step}", "definition": plan}, headers=h)
    assert r.status_code == 201, r.text
    return client.post(f"{base}/segments/{r.json()['id']}/publish", json={}, headers=h)


def _airborne_write(p: Project, rng: random.Random, step: int) -> Any:
    """An Airborne dimension, cohort checkpoint or release of the same project."""
    client, h = p.api.client, p.owner.org(p.organisation, p.key)
    dims = "/organisations/applications/dimension"
    action = rng.choice(["dimension", "cohort", "release"])
    if action == "dimension":
        names = [d["dimension"] for d in client.get(dims + "/list", headers=h).json()["data"]]
        plain = [n for n in names if n.startswith("d")]
        if plain and rng.random() < 0.5:
            name = rng.choice(plain)
            if rng.random() < 0.5:
                return client.delete(f"{dims}/{name}", headers=h)
            return client.put(f"{dims}/{name}", json={"position": 1}, headers=h)
        body: dict[str, Any] = {"dimension": f"d{step}", "description": "d", "schema": {"type": "string"}}
        return client.post(dims + "/create", json=body, headers=h)
    if action == "cohort":
        if client.get(f"{dims}/versions/cohort", headers=h).status_code != 200:
            for dimension in (
                {"dimension": "app_version", "description": "v", "schema": {"type": "string"}},
                {"dimension": "versions", "description": "c", "dimension_type": "cohort", "depends_on": "app_version"},
            ):
                r = client.post(dims + "/create", json=dimension, headers=h)
                assert r.status_code == 200, r.text
        body = {"name": f"v{step}", "value": f"{step}.0.0", "comparator": "semver_ge"}
        return client.post(f"{dims}/versions/cohort/checkpoint", json=body, headers=h)
    if not client.get("/packages/list", headers=h).json()["data"]:
        file = {"file_path": "index.jsa", "url": "https://cdn.example.com/i", "tag": "latest", "size": 1}
        r = client.post("/file", json={**file, "checksum": "a" * 64}, headers=h)
        assert r.status_code == 200, r.text
        r = client.post("/packages", json={"index": "index.jsa", "tag": "v1", "files": []}, headers=h)
        assert r.status_code == 200, r.text
    r = client.post("/releases", json={}, headers=h)
    then = rng.choice(["ramp", "conclude", "discard", None])
    if r.status_code != 200 or then is None:
        return r
    release = r.json()["id"]
    bodies: dict[str, dict[str, Any]] = {
        "ramp": {"traffic_percentage": 30},
        "conclude": {"chosen_variant": f"{release}-{rng.choice(['control', 'experimental'])}"},
        "discard": {},
    }
    body = bodies[then]
    return client.post(f"/releases/{release}/{then}", json=body, headers=h)


def _audience_write(p: Project, rng: random.Random, step: int) -> Any:
    """Create, change or delete an audience, or make a feature's target use one."""
    audiences = [a["key"] for a in p.get("/audiences").json()]
    action = rng.choice(["create", "update", "update", "use", "delete"]) if audiences else "create"
    filters = rng.choice([{"operator": "and", "filters": [TIER]}, {"operator": "or", "filters": [SEATS]}])
    if action == "create":
        if audiences and rng.random() < 0.5:
            # An audience that references another one (a change reaches through it).
            inner = p.get(f"/audiences/{rng.choice(audiences)}").json()["_id"]
            filters = {
                "operator": "and",
                "filters": [{"type": "audienceMatch", "comparator": "=", "_audiences": [inner]}],
            }
        return p.post("/audiences", {"name": f"A{step}", "key": f"a{step}", "filters": filters})
    key = rng.choice(audiences)
    if action == "update":
        return p.patch(f"/audiences/{key}", {"filters": filters})
    if action == "delete":
        return p.delete(f"/audiences/{key}")
    existing = [f["key"] for f in p.get("/features").json()]
    if not existing:
        return p.delete(f"/audiences/{key}")
    audience_id = p.get(f"/audiences/{key}").json()["_id"]
    match = {"type": "audienceMatch", "comparator": "=", "_audiences": [audience_id]}
    config = {"status": "active", "targets": [target({"operator": "and", "filters": [match]})]}
    return p.configure(rng.choice(existing), rng.choice(ENVS), config)


def _keys(p: Project) -> list[str]:
    return [f["key"] for f in p.get("/features").json()]


def _services(api: Api) -> Any:
    return api.client.app.state.services  # type: ignore[attr-defined]


def _builder(client: TestClient) -> Builder:
    builder: Builder = client.app.state.services.validate_projects.__self__  # type: ignore[attr-defined]
    return builder


def assert_kept_is_a_whole_build(client: TestClient) -> None:
    """What the control plane keeps for the next write equals a whole build of the database."""
    store: Store = client.app.state.services.store  # type: ignore[attr-defined]
    with store.read() as db:
        for env_id, state in _builder(client).kept().items():
            assert orjson.dumps(state.document()) == orjson.dumps(build_environment_state(db, env_id).document())


def whole_build(db: Connection) -> ChangeSet:
    """What a whole build of every project publishes."""
    whole = ChangeSet()
    for row in db.execute("SELECT id FROM projects").fetchall():
        whole.update(project_state(db, row["id"]))
    return whole


def assert_tables_are(tables: dict[str, dict[str, bytes]], whole: ChangeSet) -> None:
    """Every value LMDB holds (``read_all``'s tables), without its version stamp, is the whole
    build's, byte for byte, and nothing more or less."""
    for table in TABLES:
        stored = {k: orjson.dumps(unstamped(table, decode(v))) for k, v in tables[table].items()}
        built = {k: orjson.dumps(v) for k, v in whole.table(table).items() if v is not None}
        assert stored.keys() == built.keys(), table
        for key in stored:
            assert stored[key] == built[key], f"{table}/{key}"


def assert_store_is_a_whole_build(api: Api) -> None:
    publisher: Publisher = api.client.app.state.publisher  # type: ignore[attr-defined]
    store: Store = _services(api).store
    _, tables = publisher.writer.read_all()
    with store.read() as db:
        whole = whole_build(db)
    # What the builder keeps for the next write (on PostgreSQL the replicas' leader publishes from
    # builds of its own, patched too: test_replica_builds.py), and its compiled snapshots.
    assert_kept_is_a_whole_build(api.client)
    assert_kept_snapshots_are_full_compiles(_builder(api.client))
    assert_tables_are(tables, whole)


CONTEXTS: list[dict[str, Any]] = [
    {"user": {"id": f"u{i}", "customData": {"tier": tier, "seats": seats}}, "company": {"plan": plan}}
    for i, (tier, seats, plan) in enumerate([("gold", 5, "pro"), ("silver", 1, "free"), ("gold", 2, "free")])
]


def assert_kept_snapshots_are_full_compiles(builder: Builder) -> None:
    """The compiled snapshots the builder keeps (patched, the DevCycle section too) answer as a
    full compile of the same document."""
    for project in builder._kept.values():
        for env in project.environments.values():
            assert env.snapshot is not None
            whole = evaluator.Snapshot.assemble(env.extras_json, list(env.entries.values()))
            for s in (env.snapshot, whole):
                s.drain_counts()
            for name in ("flag_keys", "remote_only", "devcycle_splits"):
                assert getattr(env.snapshot, name)() == getattr(whole, name)(), name
            stored = list(env.entries.values())
            for name in ("definitions_json", "local_definitions_json"):
                assert getattr(env.snapshot, name)(stored) == getattr(whole, name)(stored), name
            for kind in ("client", "server"):
                assert env.snapshot.hidden_from(kind) == whole.hidden_from(kind)
            for context in CONTEXTS:
                user = {"user_id": context["user"]["id"], "customData": context["user"]["customData"]}
                got, want = (
                    (
                        s.evaluate_all(context, debug=True, now_ms=0, key_kind="client"),
                        s.ofrep_all(context, flag_state_version=1, has_targeting_key=True, now_ms=0),
                        s.devcycle_bucket(user, 0),
                    )
                    for s in (env.snapshot, whole)
                )
                assert got == want
            assert sorted(env.snapshot.drain_counts()) == sorted(whole.drain_counts())


@pytest.mark.parametrize("seed", [1, 2])
def test_incremental_builds_publish_what_a_whole_build_does(api: Api, seed: int) -> None:
    rng = random.Random(seed)
    p = setup(api)
    builder: Builder = _services(api).validate_projects.__self__
    for step in range(36):
        _write(p, rng, _keys(p), step)
        assert_store_is_a_whole_build(api)
    assert builder.counts["patched"] > builder.counts["whole"], builder.counts


# Writes that touched their project whole before (issue 21): one variable, the project's row,
# Releaseo and Airborne.
ROW_OPS = ("variable", "variable", "variable", "settings", "releaseo", "airborne")


@pytest.mark.parametrize("seed", [3, 4])
def test_variable_settings_releaseo_and_airborne_writes_publish_what_a_whole_build_does(api: Api, seed: int) -> None:
    """Those writes mixed with feature writes (every third): a variable write rebuilds its
    feature only, the others no flag (or the project whole when flags read the change)."""
    rng = random.Random(seed)
    p = setup(api)
    builder: Builder = _services(api).validate_projects.__self__
    done: set[str] = set()
    for step in range(45):
        if step % 3 == 0:
            _write(p, rng, _keys(p), 0)
        else:
            done.add(_project_write(p, rng, _keys(p), step, ROW_OPS) or "refused")
        assert_store_is_a_whole_build(api)
    assert set(ROW_OPS) <= done, done
    assert builder.counts["patched"] > 2 * builder.counts["whole"], builder.counts


def test_a_write_rolled_back_after_its_build_is_not_kept(api: Api) -> None:
    """A write whose transaction fails after its snapshots were built and validated leaves
    nothing of its build behind: the next write builds on what the database holds."""
    p = setup(api)
    rule = {"status": "active", "targeting": {"rules": [{"filter": {"type": "constant", "value": True}}]}}
    for key in ("f0", "f1"):
        r = p.post("/features", {"key": key, "name": key, "configurations": {"development": rule}})
        assert r.status_code == 201, r.text
    services = _services(api)
    record_change = services.record_change

    def fail(db: Any, project_ids: set[str], features: Any) -> None:
        raise ApiError(503, "the write fails after its build")

    services.record_change = fail  # called in the transaction, right after the validation
    try:
        assert p.configure("f0", "development", {"status": "inactive"}).status_code == 503
    finally:
        services.record_change = record_change
    assert p.configure("f1", "development", {"status": "inactive"}).status_code == 200
    assert_store_is_a_whole_build(api)


RULE = {"status": "active", "targeting": {"rules": [{"filter": {"type": "constant", "value": True}}]}}
SECRET = "test-secret-" + "x" * 32


def _two_features(p: Project) -> None:
    for key in ("f0", "f1"):
        var = f"{key}-v"
        variations = [
            {"key": "on", "name": "On", "variables": {var: True}},
            {"key": "off", "name": "Off", "variables": {var: False}},
        ]
        body = {
            "key": key,
            "name": key,
            "variables": [{"key": var, "type": "Boolean"}],
            "variations": variations,
            "configurations": {"development": RULE},
        }
        r = p.post("/features", body)
        assert r.status_code == 201, r.text


def _project_id(store: Store) -> str:
    row = store.one("SELECT id FROM projects")
    assert row is not None
    return str(row["id"])


def test_the_first_write_after_a_start_patches_a_build_warmed_up_after_the_start(
    tmp_path: Path, database_url: str | None
) -> None:
    """A start keeps no build: one is warmed up on a thread (``control_plane.warm_builds``), and
    the first write patches it instead of building the project whole."""
    settings = Settings(data_dir=tmp_path, jwt_secret=SECRET, database_url=database_url)
    with TestClient(create_app(settings)) as client:
        p = setup(Api(client))
        _two_features(p)
    with TestClient(create_app(settings)) as client:
        p.api = Api(client)
        assert client.app.state.warmer.wait(60)  # type: ignore[attr-defined]
        builder = _builder(client)
        assert builder.counts == {"patched": 0, "whole": 0, "warmed": 2}, builder.counts
        assert p.configure("f0", "production", RULE).status_code == 200
        assert builder.counts["patched"] == 2 and builder.counts["whole"] == 0, builder.counts
        assert_store_is_a_whole_build(p.api)
        assert p.configure("f1", "development", {"status": "inactive"}).status_code == 200
        assert builder.counts["patched"] == 4 and builder.counts["whole"] == 0, builder.counts
        assert_store_is_a_whole_build(p.api)


def test_a_warm_up_older_than_the_last_write_is_caught_up_or_built_whole(api: Api) -> None:
    """A warm-up that read the database before a write (it raced it) is not patched by a later
    write with that write's change alone (the build generation it read is not the one that write
    raised from): with what the write in between recorded it changed, or whole without it."""
    p = setup(api)
    _two_features(p)
    services = _services(api)
    builder = _builder(api.client)
    with services.store.snapshot() as stale:
        current(stale, _project_id(services.store))  # the snapshot is of this moment
        assert p.configure("f0", "development", {"status": "inactive"}).status_code == 200
        # A write that fails after its build: nothing is kept for the project any more.
        record_change = services.record_change

        def fail(db: Any, project_ids: set[str], features: Any) -> None:
            raise ApiError(503, "the write fails after its build")

        services.record_change = fail
        try:
            assert p.configure("f1", "development", {"status": "inactive"}).status_code == 503
        finally:
            services.record_change = record_change
        builder.warm(stale, _project_id(services.store))  # f0 still active there
    counts = dict(builder.counts)
    assert p.configure("f1", "production", RULE).status_code == 200
    assert builder.counts["patched"] == counts["patched"] + 2, (counts, builder.counts)
    assert_store_is_a_whole_build(api)
    # Again, without the record of the write in between: built whole.
    with services.store.snapshot() as stale:
        current(stale, _project_id(services.store))
        assert p.configure("f0", "development", RULE).status_code == 200
        with services.store.transaction() as db:
            db.execute("DELETE FROM build_changes")
        builder._kept.clear()  # as after the failed write above
        builder.warm(stale, _project_id(services.store))
    counts = dict(builder.counts)
    assert p.configure("f1", "production", {"status": "inactive"}).status_code == 200
    assert builder.counts["whole"] == counts["whole"] + 2, (counts, builder.counts)
    assert_store_is_a_whole_build(api)


def test_a_replica_patches_after_another_replicas_write_with_what_it_changed(tmp_path: Path, postgres_url: str) -> None:
    """Replicas on one PostgreSQL patch what they keep, after another replica's write to the
    project too (its build generation moved on): with what that write recorded it changed
    (``build_changes``). A missing record (pruned), or one of a write that changed the project as a
    whole, makes it build whole."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = TestClient(create_app(Settings(data_dir=tmp_path / "a", jwt_secret=SECRET, database_url=postgres_url)))
    b = TestClient(create_app(Settings(data_dir=tmp_path / "b", jwt_secret=SECRET, database_url=postgres_url)))
    with a, b:
        pa = setup(Api(a))
        pb = Project(Api(b), pa.owner, pa.organisation, pa.key, pa.environments)
        _two_features(pa)
        builder_a = _builder(a)
        store: Store = _services(Api(a)).store
        project_id = store.one("SELECT id FROM projects")[0]  # type: ignore[index]

        def after_b(expect: str, between: Callable[[], None] = lambda: None) -> None:
            """B writes, ``between`` runs, then A writes: A's builds are ``expect``-ed."""
            assert pb.configure("f0", "development", {"status": "inactive"}).status_code == 200
            assert pb.configure("f1", "production", RULE).status_code == 200
            assert_kept_is_a_whole_build(b)
            between()
            before = dict(builder_a.counts)
            assert pa.configure("f1", "development", {"status": "inactive"}).status_code == 200
            other = "whole" if expect == "patched" else "patched"
            assert builder_a.counts[expect] == before[expect] + 2, (before, builder_a.counts)
            assert builder_a.counts[other] == before[other], (before, builder_a.counts)
            assert_kept_is_a_whole_build(a)
            pa.configure("f1", "development", RULE)
            pb.configure("f0", "development", RULE)

        assert pa.configure("f0", "production", RULE).status_code == 200
        # A kept the build of its last write, from before B's two: patched with what they changed.
        after_b("patched")

        def pruned() -> None:  # B's first write's record
            with store.transaction() as db:
                db.execute(
                    "DELETE FROM build_changes WHERE project_id = ? AND generation = ?",
                    (project_id, current(db, project_id) - 1),
                )

        def whole() -> None:  # B's second write changed the project as a whole
            with store.transaction() as db:
                db.execute(
                    "UPDATE build_changes SET features = NULL WHERE project_id = ? AND generation = ?",
                    (project_id, current(db, project_id)),
                )

        def unrecorded() -> None:  # a generation raised by a write of a release without records
            with store.transaction() as db:
                advance(db, project_id)

        for gap in (pruned, whole, unrecorded):
            after_b("whole", gap)
            after_b("patched")  # what the whole build kept is caught up again


def test_writes_that_change_no_feature_build_no_flag(api: Api) -> None:
    """An SDK key, a custom property, a self-targeting override, a new environment: none
    changes a feature, so no environment that existed is built whole (an SDK key rebuilds
    nothing, the others assemble the DevCycle section again from the kept parts)."""
    p = setup(api)
    _two_features(p)
    builder = _builder(api.client)
    whole, patched = builder.counts["whole"], builder.counts["patched"]
    writes: list[Callable[[], Any]] = [
        lambda: p.post("/environments/development/sdk-keys", {"server": True}),
        lambda: p.post("/customProperties", {"name": "S", "key": "seats", "type": "Number", "propertyKey": "seats"}),
        lambda: p.patch("/userProfile/current", {"dvcUserId": "me"}),
        lambda: p.api.client.put(
            p.url + "/features/f0/overrides/current",
            json={"environment": "development", "variation": "on"},
            headers=p.h,
        ),
        lambda: p.patch("/environments/production", {"key": "prod"}),
    ]
    for write in writes:
        r = write()
        assert r.status_code in (200, 201), r.text
        patched += 2
        assert builder.counts == {"patched": patched, "whole": whole, "warmed": 0}, builder.counts
        assert_store_is_a_whole_build(api)
    # A new environment is built whole; the others are not.
    assert p.post("/environments", {"name": "QA", "key": "qa", "type": "staging"}).status_code == 201
    assert builder.counts == {"patched": patched + 2, "whole": whole + 1, "warmed": 0}, builder.counts
    assert_store_is_a_whole_build(api)


def test_an_audience_change_rebuilds_the_features_that_use_it(api: Api) -> None:
    """Changing an audience rebuilds only the features whose targets reference it, directly or
    through another audience, and no environment is built whole."""
    p = setup(api)
    _two_features(p)
    for key, filters in (("gold", {"operator": "and", "filters": [TIER]}), ("many", None)):
        if filters is None:
            gold = p.get("/audiences/gold").json()["_id"]
            filters = {
                "operator": "and",
                "filters": [{"type": "audienceMatch", "comparator": "=", "_audiences": [gold]}],
            }
        assert p.post("/audiences", {"name": key, "key": key, "filters": filters}).status_code == 201
    for feature, audience in (("f0", "gold"), ("f1", "many")):
        audience_id = p.get(f"/audiences/{audience}").json()["_id"]
        match = {"type": "audienceMatch", "comparator": "=", "_audiences": [audience_id]}
        config = {"status": "active", "targets": [target({"operator": "and", "filters": [match]})]}
        assert p.configure(feature, "development", config).status_code == 200
    builder = _builder(api.client)
    whole = builder.counts["whole"]
    publisher: Publisher = api.client.app.state.publisher  # type: ignore[attr-defined]
    before = publisher.writer.read_all()[1]["flags"]
    assert p.patch("/audiences/gold", {"filters": {"operator": "or", "filters": [SEATS]}}).status_code == 200
    assert builder.counts["whole"] == whole, builder.counts
    assert_store_is_a_whole_build(api)
    # Both flags changed in development (f1 through "many"), none in production.
    _, tables = publisher.writer.read_all()
    dev = p.environments["development"]["_id"]
    changed = {key for key, raw in tables["flags"].items() if before.get(key) != raw}
    assert changed == {f"{dev}/f0", f"{dev}/f1"}, changed


def test_a_variable_write_rebuilds_its_feature_and_releaseo_airborne_and_settings_no_flag(api: Api) -> None:
    """A variable's rename changes its feature's flag only; a Releaseo widget, an Airborne
    dimension, the project's description build no flag; the passthrough setting, which every
    DevCycle flag reads, builds the project whole."""
    p = setup(api)
    _two_features(p)
    builder = _builder(api.client)
    publisher: Publisher = api.client.app.state.publisher  # type: ignore[attr-defined]
    dev = p.env_id("development")

    def changed_flags(write: Callable[[], Any]) -> set[str]:
        before = publisher.writer.read_all()[1]["flags"]
        whole = builder.counts["whole"]
        r = write()
        assert r.status_code in (200, 201), r.text
        assert builder.counts["whole"] == whole, builder.counts
        assert_store_is_a_whole_build(api)
        after = publisher.writer.read_all()[1]["flags"]
        return {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}

    assert changed_flags(lambda: p.patch("/variables/f0-v", {"key": "f0-w"})) == {f"{dev}/f0"}
    assert changed_flags(lambda: p.patch("/variables/f1-v/status", {"status": "archived"})) == {f"{dev}/f1"}
    org = {**p.h, "x-organisation": p.organisation}
    widget = {"settings": {"theme": "dark"}}
    assert changed_flags(lambda: api.client.put("/projects/app/widget-config", json=widget, headers=org)) == set()
    dimension = {"dimension": "platform", "description": "p", "schema": {"type": "string"}}
    app = p.owner.org(p.organisation, p.key)
    create = "/organisations/applications/dimension/create"
    assert changed_flags(lambda: api.client.post(create, json=dimension, headers=app)) == set()
    assert changed_flags(lambda: p.patch("", {"description": "d"})) == set()
    whole = builder.counts["whole"]
    assert p.patch("/settings", {"settings": {"disablePassthroughRollouts": True}}).status_code == 200
    assert builder.counts["whole"] == whole + 2, builder.counts
    assert_store_is_a_whole_build(api)
