"""Contract tests of DevCycle feature configurations (targets, rollouts, distributions), Reflag-format
targeting, targetingVersion, and the environment snapshot the evaluator compiles (seed 002)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

import evaluator
from control_plane.features_snapshot import environment_features
from control_plane.snapshots import build_environment_document, compile_environment
from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.devcycle_support import ALL, PRO, PRO_NODE, Project, fields, member, project, target

CONFIG_FIELDS = {
    "_feature",
    "_environment",
    "_createdBy",
    "status",
    "startedAt",
    "updatedAt",
    "targets",
    "targetingVersion",
    "readonly",
    "hasStaticConfig",
}


def setup(api: Api) -> Project:
    p = project(api)
    p.environment("production", "production")
    p.feature()
    return p


def iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_list_configurations(api: Api) -> None:
    p = setup(api)
    r = p.get("/features/new-dash/configurations")
    assert r.status_code == 200
    configs = r.json()
    assert [c["_environment"] for c in configs] == [p.env_id("development"), p.env_id("production")]
    for c in configs:
        assert set(c) == CONFIG_FIELDS
        assert c["status"] == "inactive" and c["targets"] == [] and c["targetingVersion"] == 0
        assert c["startedAt"] is None and c["hasStaticConfig"] is False
    (one,) = p.get("/features/new-dash/configurations", environment="production").json()
    assert one["_environment"] == p.env_id("production")
    (same,) = p.get("/features/new-dash/configurations", environment=p.env_id("production")).json()
    assert same == one
    assert_error(p.get("/features/new-dash/configurations", environment="qa"), 404, "not_found")
    assert_error(p.get("/features/ghost/configurations"), 404, "not_found")


def test_update_configuration_with_targets(api: Api) -> None:
    p = setup(api)
    body = {
        "status": "active",
        "targets": [
            {
                "_id": "61450f3daec96f5cf4a49946",
                "name": "Feature Enabled",
                "audience": {"name": "Pro users", "filters": PRO},
                "rollout": {
                    "type": "gradual",
                    "startPercentage": 0.5,
                    "startDate": "2020-01-01T00:00:00Z",
                    "stages": [{"type": "linear", "date": "2020-02-01T00:00:00+01:00", "percentage": 1}],
                },
                "distribution": [{"_variation": "on", "percentage": 0.25}, {"_variation": "off", "percentage": 0.75}],
                "bucketingKey": "email",
            }
        ],
    }
    r = p.configure("new-dash", "development", body)
    assert r.status_code == 200, r.text
    c = r.json()
    assert set(c) == CONFIG_FIELDS
    assert c["status"] == "active" and c["targetingVersion"] == 1 and c["startedAt"].endswith("Z")
    assert c["_environment"] == p.env_id("development") and c["_createdBy"] == p.owner.user_id
    (t,) = c["targets"]
    ids = {v["key"]: v["_id"] for v in p.get("/features/new-dash").json()["variations"]}
    assert t == {
        "_id": "61450f3daec96f5cf4a49946",
        "name": "Feature Enabled",
        "audience": {"name": "Pro users", "filters": PRO},
        "rollout": {
            "type": "gradual",
            "startDate": "2020-01-01T00:00:00.000Z",
            "startPercentage": 0.5,
            "stages": [{"type": "linear", "date": "2020-01-31T23:00:00.000Z", "percentage": 1}],
        },
        "distribution": [{"_variation": ids["on"], "percentage": 0.25}, {"_variation": ids["off"], "percentage": 0.75}],
        "bucketingKey": "email",
    }
    assert p.get("/features/new-dash/configurations", environment="development").json() == [c]
    # Production is untouched.
    prod = p.get("/features/new-dash/configurations", environment="production").json()[0]
    assert prod["targetingVersion"] == 0
    # Target ids are generated when not sent.
    r = p.configure("new-dash", "production", {"targets": [target(), target(variation="off")]})
    generated = [t["_id"] for t in r.json()["targets"]]
    assert len(set(generated)) == 2 and all(len(i) == 24 for i in generated)


def test_targeting_version_bumps_on_every_change(api: Api) -> None:
    p = setup(api)
    versions = []
    steps: list[dict[str, Any]] = [
        {"targets": [target(_id="t1")]},
        {"status": "active"},
        {"targets": [target(_id="t1", variation="off")]},
        {"status": "inactive"},
        {"targets": [target(_id="t1", variation="off")]},  # no change
        {"status": "inactive"},  # no change
        {"targets": []},
    ]
    for body in steps:
        r = p.configure("new-dash", "development", body)
        assert r.status_code == 200, r.text
        versions.append(r.json()["targetingVersion"])
    assert versions == [1, 2, 3, 4, 4, 4, 5]
    assert p.get("/features/new-dash/configurations", environment="production").json()[0]["targetingVersion"] == 0


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda t: t["distribution"].append({"_variation": "off", "percentage": 0.5}), "targets[0].distribution"),
        (
            lambda t: t.update(
                distribution=[{"_variation": "on", "percentage": 0.4}, {"_variation": "off", "percentage": 0.4}]
            ),
            "targets[0].distribution",
        ),
        (
            lambda t: t.update(distribution=[{"_variation": "ghost", "percentage": 1}]),
            "targets[0].distribution[0]._variation",
        ),
        (
            lambda t: t.update(
                distribution=[{"_variation": "on", "percentage": 0.5}, {"_variation": "on", "percentage": 0.5}]
            ),
            "targets[0].distribution[1]._variation",
        ),
        (
            lambda t: t.update(distribution=[{"_variation": "on", "percentage": 1.5}]),
            "targets.0.distribution.0.percentage",
        ),
        (lambda t: t.update(distribution=[]), "targets.0.distribution"),
        (lambda t: t.pop("audience"), "targets.0.audience"),
        (
            lambda t: t.update(rollout={"type": "gradual", "startDate": "2024-01-01T00:00:00Z"}),
            "targets[0].rollout.startPercentage",
        ),
        (lambda t: t.update(rollout={"type": "schedule", "startDate": "tomorrow"}), "targets[0].rollout.startDate"),
        (lambda t: t.update(rollout={"type": "linear", "startDate": "2024-01-01"}), "targets.0.rollout.type"),
        (
            lambda t: t.update(
                rollout={
                    "type": "stepped",
                    "startPercentage": 0,
                    "startDate": "2024-01-01",
                    "stages": [{"type": "discrete", "date": "2024-02-31", "percentage": 1}],
                }
            ),
            "targets[0].rollout.stages[0].date",
        ),
        (
            lambda t: t["audience"].update(filters={"operator": "xor", "filters": []}),
            "targets[0].audience.filters.operator",
        ),
        (
            lambda t: t["audience"].update(filters={"operator": "and", "filters": [{"type": "weird"}]}),
            "targets[0].audience.filters.filters[0].type",
        ),
        (
            lambda t: t["audience"].update(
                filters={"filters": [{"type": "user", "subType": "name", "comparator": "="}]}
            ),
            "targets[0].audience.filters.filters[0].subType",
        ),
        (
            lambda t: t["audience"].update(
                filters={"filters": [{"type": "user", "subType": "email", "comparator": "like", "values": ["a"]}]}
            ),
            "targets[0].audience.filters.filters[0].comparator",
        ),
        (
            lambda t: t["audience"].update(
                filters={"filters": [{"type": "user", "subType": "email", "comparator": "="}]}
            ),
            "targets[0].audience.filters.filters[0].values",
        ),
        (
            lambda t: t["audience"].update(
                filters={"filters": [{"type": "user", "subType": "email", "comparator": "=", "values": [{"a": 1}]}]}
            ),
            "targets[0].audience.filters.filters[0].values[0]",
        ),
        (
            lambda t: t["audience"].update(
                filters={"filters": [{"type": "user", "subType": "customData", "comparator": "=", "values": ["x"]}]}
            ),
            "targets[0].audience.filters.filters[0].dataKey",
        ),
        (
            lambda t: t["audience"].update(
                filters={
                    "filters": [
                        {
                            "type": "user",
                            "subType": "customData",
                            "dataKey": "plan",
                            "dataKeyType": "Date",
                            "comparator": "=",
                            "values": ["x"],
                        }
                    ]
                }
            ),
            "targets[0].audience.filters.filters[0].dataKeyType",
        ),
        (
            lambda t: t["audience"].update(
                filters={"filters": [{"type": "audienceMatch", "comparator": "=", "_audiences": ["ghost"]}]}
            ),
            "targets[0].audience.filters.filters[0]._audiences[0]",
        ),
        (
            lambda t: t["audience"].update(filters={"filters": [{"type": "all", "extra": 1}]}),
            "targets[0].audience.filters.filters[0].extra",
        ),
        (lambda t: t.update(_id="bad id!"), "targets.0._id"),
    ],
)
def test_target_validation(api: Api, mutate: Any, field: str) -> None:
    p = setup(api)
    t = target()
    mutate(t)
    r = p.configure("new-dash", "development", {"status": "active", "targets": [t]})
    assert_error(r, 400, "validation_failed")
    assert fields(r) == [field], r.text
    assert p.get("/features/new-dash/configurations", environment="development").json()[0]["targetingVersion"] == 0


def test_configuration_request_errors(api: Api) -> None:
    p = setup(api)
    r = api.client.patch(p.url + "/features/new-dash/configurations", json={"status": "active"}, headers=p.h)
    assert_error(r, 400, "validation_failed")
    assert fields(r) == ["query.environment"]
    assert_error(p.configure("new-dash", "qa", {"status": "active"}), 404, "not_found")
    assert_error(p.configure("ghost", "development", {"status": "active"}), 404, "not_found")
    assert_error(p.configure("new-dash", "development", {"status": "on"}), 400, "validation_failed")
    r = p.configure("new-dash", "development", {"targets": [target()], "targeting": {"rules": []}})
    assert_error(r, 400, "validation_failed")
    assert fields(r) == ["targets"]
    r = p.configure("new-dash", "development", {"config": {"variants": []}})
    assert_error(r, 400, "validation_failed")
    assert fields(r) == ["config"]
    assert_error(p.configure("new-dash", "development", {"targets": [target()] * 101}), 400, "validation_failed")
    r = p.configure("new-dash", "development", {"targets": [target(_id="same"), target(_id="same")]})
    assert fields(r) == ["targets[1]._id"]


def test_rejected_filter_names_the_node_and_valid_one_is_served(api: Api) -> None:
    """A filter the evaluator rejects answers 400 with the node's path; nothing is stored."""
    p = setup(api)
    bad = {"type": "context", "field": "user.plan", "operator": "SOUNDS_LIKE", "values": ["pro"]}
    # Reflag-format targeting: the path is the request's.
    r = p.configure(
        "new-dash",
        "development",
        {
            "status": "active",
            "targeting": {
                "rules": [
                    {"filter": {"type": "constant", "value": True}},
                    {"filter": {"type": "group", "operator": "and", "filters": [PRO_NODE, bad]}},
                ]
            },
        },
    )
    body = assert_error(r, 400, "validation_failed")
    assert body["details"][0]["field"] == "targeting.rules[1].filter.filters[1].operator"
    assert body["details"][0]["code"] == "invalid_rule"
    assert "SOUNDS_LIKE" in body["details"][0]["message"]
    # Inside a DevCycle target's audience: the path points into the target.
    r = p.configure(
        "new-dash",
        "development",
        {"status": "active", "targets": [target(), target({"operator": "or", "filters": [{"type": "all"}, bad]})]},
    )
    body = assert_error(r, 400, "validation_failed")
    assert body["details"][0]["field"] == "targets[1].audience.filters.filters[1].operator"
    r = p.configure("new-dash", "development", {"targeting": {"rules": [{"filter": {"type": "constant"}}]}})
    assert fields(r) == ["targeting.rules[0].filter.value"]
    r = p.configure(
        "new-dash",
        "development",
        {
            "targeting": {"rules": [{"filter": {"type": "constant", "value": True}}]},
            "config": {"variants": [{"key": "v", "filter": bad}]},
        },
    )
    assert fields(r) == ["config.variants[0].filter.operator"]
    assert p.get("/features/new-dash/configurations", environment="development").json()[0]["targetingVersion"] == 0
    assert p.snapshot() == []
    # The same shape with a valid operator is saved and served.
    good = {**bad, "operator": "IS"}
    r = p.configure("new-dash", "development", {"status": "active", "targeting": {"rules": [{"filter": good}]}})
    assert r.status_code == 200, r.text
    assert p.snapshot() == [
        {"key": "new-dash", "targeting": {"version": 1, "rules": [{"filter": good}]}},
    ]
    with p.store().read() as db:
        snap = compile_environment(db, p.env_id("development"))
    assert snap.flag_keys() == ["new-dash"]


def test_devcycle_targets_in_the_snapshot(api: Api) -> None:
    p = setup(api)
    r = p.configure(
        "new-dash",
        "development",
        {
            "status": "active",
            "targets": [
                target(PRO, variation="on", _id="pro-target"),
                {
                    "_id": "split",
                    "audience": {"filters": ALL},
                    "distribution": [{"_variation": "on", "percentage": 0.5}, {"_variation": "off", "percentage": 0.5}],
                },
            ],
        },
    )
    assert r.status_code == 200, r.text
    (definition,) = p.snapshot()
    assert definition["key"] == "new-dash"
    assert definition["targeting"]["version"] == 1
    rules = definition["targeting"]["rules"]
    assert rules[0] == {
        "filter": {
            "type": "group",
            "operator": "and",
            "filters": [{"type": "group", "operator": "and", "filters": [PRO_NODE]}],
        }
    }
    assert rules[1]["filter"]["filters"][0] == {
        "type": "group",
        "operator": "and",
        "filters": [{"type": "constant", "value": True}],
    }
    variants = definition["config"]["variants"]
    assert [v["key"] for v in variants] == ["on", "on", "off"]
    assert definition["config"]["version"] == 1
    assert variants[1]["filter"]["filters"][-1] == {
        "type": "rolloutPercentage",
        "key": "split",
        "partialRolloutAttribute": "user.id",
        "partialRolloutThreshold": 50000,
    }
    assert variants[2]["filter"]["filters"][-1]["type"] == "negation"
    # Evaluated by the Rust evaluator.
    pro = p.evaluate({"user": {"id": "u1", "plan": "pro"}})["new-dash"]
    assert pro["isEnabled"] is True and pro["config"]["key"] == "on"
    assert pro["config"]["payload"] == {"show-new-dashboard": True}
    snap = evaluator.Snapshot(orjson.dumps({"features": p.snapshot()}))
    contexts = [{"user": {"id": f"user-{i}", "plan": "free"}} for i in range(400)]
    counts = {"on": 0, "off": 0}
    for out in snap.evaluate_batch(contexts):
        counts[orjson.loads(out)["new-dash"]["config"]["key"]] += 1
    assert 140 < counts["on"] < 260, counts
    # The same user always gets the same variation.
    assert len({p.evaluate({"user": {"id": "stable"}})["new-dash"]["config"]["key"] for _ in range(5)}) == 1
    # Inactive configurations are not served; other environments are separate.
    assert p.snapshot("production") == []
    p.configure("new-dash", "development", {"status": "inactive"})
    assert p.snapshot() == []


def test_features_without_variable_values_have_no_config(api: Api) -> None:
    p = project(api)
    p.feature({"key": "plain", "name": "Plain", "variations": [{"key": "on", "name": "On"}]})
    p.configure("plain", "development", {"status": "active", "targets": [target()]})
    assert p.snapshot() == [
        {
            "key": "plain",
            "targeting": {
                "version": 1,
                "rules": [
                    {
                        "filter": {
                            "type": "group",
                            "operator": "and",
                            "filters": [
                                {"type": "group", "operator": "and", "filters": [{"type": "constant", "value": True}]}
                            ],
                        }
                    }
                ],
            },
        }
    ]
    assert p.evaluate({})["plain"]["isEnabled"] is True


def test_reflag_targeting_and_config(api: Api) -> None:
    p = setup(api)
    rollout = {
        "type": "rolloutPercentage",
        "key": "new-dash",
        "partialRolloutAttribute": "company.id",
        "partialRolloutThreshold": 100000,
    }
    body = {
        "status": "active",
        "targeting": {
            "version": 99,
            "rules": [
                {"filter": rollout},
                {"filter": {"operator": "and", "filters": [{"type": "negation", "filter": PRO_NODE}]}},
            ],
        },
        "config": {
            "variants": [
                {"key": "pro", "filter": PRO_NODE, "payload": {"limit": 10}},
                {"key": "default", "payload": {"limit": 1}},
            ]
        },
    }
    r = p.configure("new-dash", "development", body)
    assert r.status_code == 200, r.text
    c = r.json()
    assert c["targets"] == [] and c["targetingVersion"] == 1
    assert c["targeting"] == {
        "version": 1,
        "rules": [
            {"filter": rollout},
            {"filter": {"operator": "and", "filters": [{"type": "negation", "filter": PRO_NODE}]}},
        ],
    }
    assert c["config"]["version"] == 1 and [v["key"] for v in c["config"]["variants"]] == ["pro", "default"]
    (definition,) = p.snapshot()
    assert definition["targeting"]["rules"][1]["filter"] == {
        "type": "group",
        "operator": "and",
        "filters": [{"type": "negation", "filter": PRO_NODE}],
    }
    assert definition["config"] == {
        "version": 1,
        "variants": [
            {"key": "pro", "payload": {"limit": 10}, "filter": PRO_NODE},
            {"key": "default", "payload": {"limit": 1}},
        ],
    }
    pro = p.evaluate({"user": {"plan": "pro"}, "company": {"id": "c1"}})["new-dash"]
    assert pro["isEnabled"] is True and pro["config"] == {
        "key": "pro",
        "version": 1,
        "payload": {"limit": 10},
        "ruleEvaluationResults": [True, True],
    }
    free = p.evaluate({"user": {"plan": "free"}})["new-dash"]
    assert free["isEnabled"] is True and free["config"]["key"] == "default"
    # Sending targeting alone keeps the config; sending config alone keeps the targeting.
    r = p.configure(
        "new-dash", "development", {"targeting": {"rules": [{"filter": {"type": "constant", "value": False}}]}}
    )
    assert r.json()["targetingVersion"] == 2 and len(r.json()["config"]["variants"]) == 2
    r = p.configure("new-dash", "development", {"config": {"variants": [{"key": "only", "payload": 1}]}})
    assert r.json()["targeting"]["rules"] == [{"filter": {"type": "constant", "value": False}}]
    assert r.json()["config"]["variants"] == [{"key": "only", "payload": 1}] and r.json()["targetingVersion"] == 3
    # Switching back to DevCycle targets drops the Reflag view.
    r = p.configure("new-dash", "development", {"targets": [target()]})
    assert "targeting" not in r.json() and r.json()["targetingVersion"] == 4


def test_rollouts_move_with_the_request_clock(api: Api) -> None:
    """The snapshot carries each rollout's schedule; the edge evaluates it at the request's time
    (here injected as ``now_ms``), so it advances with no rebuild. The Reflag view served by
    ``GET /features`` shows the percentage at build time."""
    p = setup(api)
    now = datetime.now(UTC)
    now_ms = now.timestamp() * 1000
    targets = [
        target(_id="future", rollout={"type": "schedule", "startDate": iso(timedelta(days=2))}),
        target(_id="past", variation="off", rollout={"type": "schedule", "startDate": iso(-timedelta(days=2))}),
    ]
    p.configure("new-dash", "development", {"status": "active", "targets": targets})
    rules = p.snapshot(now_ms=now_ms)[0]["targeting"]["rules"]
    assert rules[0]["filter"]["filters"][1:] == [{"type": "constant", "value": False}]
    assert rules[1]["filter"]["filters"][1:] == []
    assert p.evaluate({"user": {"id": "u"}})["new-dash"]["config"]["key"] == "off"
    # Three days later the first target's schedule has opened: same snapshot, another answer.
    later = now_ms + 3 * 86_400_000
    assert p.evaluate({"user": {"id": "u"}}, now_ms=later)["new-dash"]["config"]["key"] == "on"
    # Halfway through a linear stage from 0 to 100%.
    gradual = {
        "type": "gradual",
        "startPercentage": 0,
        "startDate": iso(-timedelta(days=5)),
        "stages": [{"type": "linear", "date": iso(timedelta(days=5)), "percentage": 1}],
    }
    p.configure("new-dash", "development", {"targets": [target(_id="g", rollout=gradual)]})
    gate = p.snapshot(now_ms=now_ms)[0]["targeting"]["rules"][0]["filter"]["filters"][1]
    assert gate["type"] == "rolloutPercentage" and gate["key"] == "g_rollout"
    assert abs(gate["partialRolloutThreshold"] - 50000) < 100
    snapshot = p.compiled()
    shares = []
    for days in (-4, -1, 0, 2, 4, 6):
        at = now_ms + days * 86_400_000
        answers = [orjson.loads(snapshot.evaluate_all({"user": {"id": f"u{i}"}}, now_ms=at)) for i in range(400)]
        shares.append(sum(a["new-dash"]["isEnabled"] for a in answers))
    assert shares == sorted(shares) and len(set(shares)) == len(shares), shares
    assert 20 < shares[0] < 60 and 180 < shares[2] < 220 and shares[-1] == 400, shares
    # Stepped: the current step's percentage.
    stepped = {
        "type": "stepped",
        "startPercentage": 0.1,
        "startDate": iso(-timedelta(days=5)),
        "stages": [
            {"type": "discrete", "date": iso(-timedelta(days=1)), "percentage": 0.3},
            {"type": "discrete", "date": iso(timedelta(days=1)), "percentage": 0.9},
        ],
    }
    p.configure("new-dash", "development", {"targets": [target(_id="s", rollout=stepped, bucketingKey="plan")]})
    gate = p.snapshot(now_ms=now_ms)[0]["targeting"]["rules"][0]["filter"]["filters"][1]
    assert gate["partialRolloutThreshold"] == 30000 and gate["partialRolloutAttribute"] == "user.customData.plan"


def test_disable_passthrough_rollouts_negates_earlier_audiences(api: Api) -> None:
    p = setup(api)
    p.configure(
        "new-dash",
        "development",
        {
            "status": "active",
            "targets": [
                target(PRO, _id="a", rollout={"type": "schedule", "startDate": iso(timedelta(days=1))}),
                target(_id="b", variation="off"),
            ],
        },
    )
    # Passthrough (default): a pro user outside the first rollout falls through to the second target.
    assert p.evaluate({"user": {"id": "u", "plan": "pro"}})["new-dash"]["config"]["key"] == "off"
    r = api.client.patch(p.url, json={"settings": {"disablePassthroughRollouts": True}}, headers=p.h)
    assert r.status_code == 200
    assert p.snapshot()[0]["targeting"]["version"] == 2
    rules = p.snapshot()[0]["targeting"]["rules"]
    assert rules[1]["filter"]["filters"][1] == {"type": "negation", "filter": rules[0]["filter"]["filters"][0]}
    pro = p.evaluate({"user": {"id": "u", "plan": "pro"}})["new-dash"]
    assert pro["isEnabled"] is False
    assert p.evaluate({"user": {"id": "u", "plan": "free"}})["new-dash"]["config"]["key"] == "off"


def test_audience_match_is_inlined_and_audience_edits_bump_versions(api: Api) -> None:
    p = setup(api)
    r = p.post("/audiences", {"name": "Pro", "key": "pro-users", "filters": PRO})
    assert r.status_code == 201, r.text
    audience_id = r.json()["_id"]
    match = {"operator": "and", "filters": [{"type": "audienceMatch", "comparator": "=", "_audiences": ["pro-users"]}]}
    r = p.configure("new-dash", "development", {"status": "active", "targets": [target(match, _id="t")]})
    assert r.status_code == 200, r.text
    # Stored by id, served inlined.
    assert r.json()["targets"][0]["audience"]["filters"]["filters"][0]["_audiences"] == [audience_id]
    inlined = p.snapshot()[0]["targeting"]["rules"][0]["filter"]["filters"][0]
    assert inlined == {
        "type": "group",
        "operator": "and",
        "filters": [
            {
                "type": "group",
                "operator": "or",
                "filters": [{"type": "group", "operator": "and", "filters": [PRO_NODE]}],
            }
        ],
    }
    assert p.evaluate({"user": {"id": "1", "plan": "pro"}})["new-dash"]["isEnabled"] is True
    assert p.evaluate({"user": {"id": "1", "plan": "free"}})["new-dash"]["isEnabled"] is False
    # `!=` negates.
    not_match = {"filters": [{"type": "audienceMatch", "comparator": "!=", "_audiences": [audience_id]}]}
    p.configure("new-dash", "production", {"status": "active", "targets": [target(not_match)]})
    assert p.evaluate({"user": {"plan": "free"}}, "production")["new-dash"]["isEnabled"] is True
    assert p.evaluate({"user": {"plan": "pro"}}, "production")["new-dash"]["isEnabled"] is False
    # Editing the audience re-serves every configuration that uses it with a new version.
    enterprise = {"operator": "and", "filters": [{**PRO_NODE, "values": ["enterprise"]}]}
    r = p.patch("/audiences/pro-users", {"filters": enterprise})
    assert r.status_code == 200, r.text
    versions = {c["_environment"]: c["targetingVersion"] for c in p.get("/features/new-dash/configurations").json()}
    assert versions == {p.env_id("development"): 2, p.env_id("production"): 2}
    assert p.evaluate({"user": {"plan": "enterprise"}})["new-dash"]["isEnabled"] is True
    assert p.evaluate({"user": {"plan": "pro"}})["new-dash"]["isEnabled"] is False
    # A name-only edit changes nothing that is served.
    p.patch("/audiences/pro-users", {"name": "Enterprise"})
    assert p.snapshot()[0]["targeting"]["version"] == 2


def test_configuration_roles_and_cross_org(api: Api) -> None:
    p = setup(api)
    reader, writer = member(p, "read"), member(p, "write")
    assert p.get("/features/new-dash/configurations", user=reader).status_code == 200
    assert_error(p.configure("new-dash", "development", {"status": "active"}, reader), 403, "forbidden")
    assert p.configure("new-dash", "development", {"status": "active"}, writer).status_code == 200
    stranger = api.signup()
    api.organisation(stranger, "globex")
    assert_error(p.get("/features/new-dash/configurations", user=stranger), 404, "not_found")
    assert_error(p.configure("new-dash", "development", {"status": "inactive"}, stranger), 404, "not_found")
    assert p.get("/features/new-dash/configurations", environment="development").json()[0]["status"] == "active"


def test_configuration_writes_are_audited_and_idempotent(api: Api) -> None:
    p = setup(api)
    headers = {**p.h, "Idempotency-Key": "cfg-1"}
    url = p.url + "/features/new-dash/configurations?environment=development"
    body = {"status": "active", "targets": [target(_id="t")], "change_reason": "launch"}
    first = api.client.patch(url, json=body, headers=headers)
    second = api.client.patch(url, json=body, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json()["replayed"] is False and second.json()["replayed"] is True
    assert second.json()["targetingVersion"] == 1
    with p.store().read() as db:
        rows = db.execute("SELECT * FROM audit_log WHERE action = 'configuration.update'").fetchall()
    assert len(rows) == 1 and rows[0]["change_reason"] == "launch"
    assert rows[0]["target"] == "feature:new-dash/environment:development"


def test_snapshot_document_compiles_for_every_environment(api: Api) -> None:
    p = setup(api)
    p.feature({"key": "second", "name": "Second"})
    p.configure("new-dash", "development", {"status": "active", "targets": [target()]})
    p.configure(
        "second",
        "development",
        {"status": "active", "targeting": {"rules": [{"filter": {"type": "constant", "value": True}}]}},
    )
    with p.store().read() as db:
        doc = build_environment_document(db, p.env_id("development"))
        assert [f["key"] for f in doc["features"]] == ["new-dash", "second"]
        assert environment_features(db, "no-such-environment") == []
    snap = evaluator.Snapshot(orjson.dumps(doc))
    assert sorted(snap.flag_keys()) == ["new-dash", "second"]
