"""DevCycle user filters and JSON Logic nodes through the management API, end to end.

Configurations and audiences are written with real DevCycle ``user`` filters (``country``,
``customData`` with ``dataKey``/``dataKeyType``, ``appVersion``) and ``jsonLogic`` nodes; the
environment snapshot (``features_snapshot.environment_features``) carries them compiled in the
evaluator's shape (audiences inlined), and ``evaluator.Snapshot`` evaluates sample contexts the
way DevCycle's bucketing and json-logic-js would.
"""

from __future__ import annotations

from typing import Any

from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.devcycle_support import Project, fields, project

COUNTRY_DE = {"type": "user", "subType": "country", "comparator": "=", "values": ["DE"]}
PLAN_PRO = {
    "type": "user",
    "subType": "customData",
    "dataKey": "plan",
    "dataKeyType": "String",
    "comparator": "=",
    "values": ["pro"],
}
SEATS_10 = {
    "type": "user",
    "subType": "customData",
    "dataKey": "seats",
    "dataKeyType": "Number",
    "comparator": ">=",
    "values": [10],
}
APP_V2 = {"type": "user", "subType": "appVersion", "comparator": ">=", "values": ["2.0.0"]}
# json-logic-js with the DevCycle/Reflag context: ``{"var": "user.appVersion"}`` reads the nested context.
MODERN_LOGIC = {"type": "jsonLogic", "rule": {"sem_ver": [{"var": "user.appVersion"}, ">=", "2.0.0"]}}
GOLD_LOGIC = {"type": "jsonLogic", "rule": {"==": [{"var": "company.tier"}, "gold"]}}

FEATURE: dict[str, Any] = {
    "key": "checkout",
    "name": "Checkout",
    "variables": [{"key": "checkout-flow", "type": "String"}],
    "variations": [
        {"key": "new", "name": "New", "variables": {"checkout-flow": "new"}},
        {"key": "classic", "name": "Classic", "variables": {"checkout-flow": "classic"}},
    ],
}


def _target(filters: dict[str, Any], variation: str, name: str) -> dict[str, Any]:
    return {
        "_id": name,
        "audience": {"name": name, "filters": filters},
        "distribution": [{"_variation": variation, "percentage": 1}],
    }


def _served(p: Project, context: dict[str, Any]) -> str | None:
    """The variation key the compiled development snapshot serves ``context`` (None: feature off)."""
    result = p.evaluate(context)["checkout"]
    if not result["isEnabled"]:
        assert "config" not in result
        return None
    key: str = result["config"]["key"]
    assert result["config"]["payload"] == {"checkout-flow": key}
    return key


def _rule_filters(p: Project) -> list[Any]:
    (feature,) = p.snapshot()
    assert feature["key"] == "checkout"
    return [rule["filter"] for rule in feature["targeting"]["rules"]]


def test_user_filters_and_json_logic_in_configuration_targets(api: Api) -> None:
    p = project(api)
    p.feature(FEATURE)
    german_pro = {"operator": "and", "filters": [COUNTRY_DE, PLAN_PRO]}
    modern = {"operator": "and", "filters": [MODERN_LOGIC]}
    body = {"status": "active", "targets": [_target(german_pro, "new", "de-pro"), _target(modern, "classic", "v2")]}
    r = p.configure("checkout", "development", body)
    assert r.status_code == 200, r.text
    # Stored as sent (the node shapes are kept, including dataKey/dataKeyType).
    stored = r.json()["targets"]
    assert stored[0]["audience"]["filters"] == german_pro
    assert stored[1]["audience"]["filters"] == modern

    # Compiled: each target's audience becomes an ``and`` group holding the same nodes.
    de_pro_rule, modern_rule = _rule_filters(p)
    assert de_pro_rule == {
        "type": "group",
        "operator": "and",
        "filters": [{"type": "group", "operator": "and", "filters": [COUNTRY_DE, PLAN_PRO]}],
    }
    assert modern_rule == {
        "type": "group",
        "operator": "and",
        "filters": [{"type": "group", "operator": "and", "filters": [MODERN_LOGIC]}],
    }
    (feature,) = p.snapshot()
    assert [v["key"] for v in feature["config"]["variants"]] == ["new", "classic"]
    assert feature["config"]["variants"][0]["filter"] == de_pro_rule

    # Evaluated: the first target whose audience matches decides.
    assert _served(p, {"user": {"id": "u1", "country": "DE", "customData": {"plan": "pro"}}}) == "new"
    assert _served(p, {"user": {"id": "u1", "country": "DE", "privateCustomData": {"plan": "pro"}}}) == "new"
    assert _served(p, {"user": {"id": "u1", "country": "DE", "customData": {"plan": "pro"}, "appVersion": "3.0"}}) == (
        "new"
    )
    assert _served(
        p, {"user": {"id": "u2", "country": "FR", "customData": {"plan": "pro"}, "appVersion": "2.1.0"}}
    ) == ("classic")
    assert _served(p, {"user": {"id": "u3", "country": "DE", "customData": {"plan": "free"}}}) is None
    # dataKeyType String: a number is not the string "pro"; a missing customData never matches "=".
    assert _served(p, {"user": {"id": "u4", "country": "DE", "customData": {"plan": 1}}}) is None
    assert _served(p, {"user": {"id": "u5", "country": "DE"}}) is None
    assert _served(p, {"user": {"id": "u6", "country": "US", "appVersion": "1.9.9"}}) is None


def test_user_filters_and_json_logic_in_audiences_used_by_a_configuration(api: Api) -> None:
    p = project(api)
    p.feature(FEATURE)
    big_german = {"operator": "and", "filters": [COUNTRY_DE, SEATS_10]}
    gold_or_modern = {"operator": "or", "filters": [GOLD_LOGIC, APP_V2]}
    created = {}
    for key, filters in (("big-german", big_german), ("gold-or-modern", gold_or_modern)):
        r = p.post("/audiences", {"name": key.title(), "key": key, "filters": filters})
        assert r.status_code == 201, r.text
        assert r.json()["filters"] == filters
        created[key] = r.json()["_id"]
    targets = [
        _target({"filters": [{"type": "audienceMatch", "_audiences": ["big-german"]}]}, "new", "big"),
        _target(
            {"filters": [{"type": "audienceMatch", "comparator": "=", "_audiences": ["gold-or-modern"]}]},
            "classic",
            "gm",
        ),
    ]
    r = p.configure("checkout", "development", {"status": "active", "targets": targets})
    assert r.status_code == 200, r.text
    # audienceMatch references are stored as audience ids ...
    assert r.json()["targets"][0]["audience"]["filters"]["filters"][0]["_audiences"] == [created["big-german"]]

    # ... and inlined in the snapshot: the audience's own tree, with the user and jsonLogic nodes.
    big_rule, gm_rule = _rule_filters(p)
    inlined_big = {"type": "group", "operator": "and", "filters": [COUNTRY_DE, SEATS_10]}
    inlined_gm = {"type": "group", "operator": "or", "filters": [GOLD_LOGIC, APP_V2]}
    assert big_rule["filters"] == [
        {"type": "group", "operator": "and", "filters": [{"type": "group", "operator": "or", "filters": [inlined_big]}]}
    ]
    assert gm_rule["filters"] == [
        {"type": "group", "operator": "and", "filters": [{"type": "group", "operator": "or", "filters": [inlined_gm]}]}
    ]

    assert _served(p, {"user": {"id": "a", "country": "DE", "customData": {"seats": 25}}}) == "new"
    assert _served(p, {"user": {"id": "b", "country": "DE", "customData": {"seats": 10}}}) == "new"
    # dataKeyType Number: a string (all a query string can carry) is read as a number when it is
    # one, on every route; one that is not a number does not match.
    assert _served(p, {"user": {"id": "c", "country": "DE", "customData": {"seats": "25"}}}) == "new"
    assert _served(p, {"user": {"id": "c", "country": "DE", "customData": {"seats": "many"}}}) is None
    assert _served(p, {"user": {"id": "d", "country": "DE", "customData": {"seats": 9}}}) is None
    assert _served(p, {"company": {"tier": "gold"}, "user": {"id": "e", "country": "US"}}) == "classic"
    assert _served(p, {"user": {"id": "f", "country": "US", "appVersion": "2.0.1"}}) == "classic"
    assert _served(p, {"company": {"tier": "silver"}, "user": {"id": "g", "appVersion": "1.0.0"}}) is None

    # Editing the audience changes what the configuration serves (the snapshot is rebuilt).
    r = p.patch("/audiences/big-german", {"filters": {"operator": "and", "filters": [COUNTRY_DE]}})
    assert r.status_code == 200, r.text
    assert _served(p, {"user": {"id": "d", "country": "DE", "customData": {"seats": 9}}}) == "new"


def test_user_filters_in_reflag_targeting(api: Api) -> None:
    p = project(api)
    p.feature(FEATURE)
    rule = {"type": "group", "operator": "and", "filters": [COUNTRY_DE, MODERN_LOGIC]}
    body = {
        "status": "active",
        "targeting": {"rules": [{"filter": rule}]},
        "config": {
            "variants": [
                {"key": "new", "filter": PLAN_PRO, "payload": {"checkout-flow": "new"}},
                {"key": "classic", "payload": {"checkout-flow": "classic"}},
            ]
        },
    }
    r = p.configure("checkout", "development", body)
    assert r.status_code == 200, r.text
    (feature,) = p.snapshot()
    assert feature["targeting"]["rules"] == [{"filter": rule}]
    assert feature["config"]["variants"][0]["filter"] == PLAN_PRO
    pro = {"user": {"id": "u", "country": "DE", "appVersion": "2.5.0", "customData": {"plan": "pro"}}}
    free = {"user": {"id": "u", "country": "DE", "appVersion": "2.5.0", "customData": {"plan": "free"}}}
    old = {"user": {"id": "u", "country": "DE", "appVersion": "1.0.0", "customData": {"plan": "pro"}}}
    # Reflag semantics: targeting decides isEnabled; the config variants are matched on their own.
    assert _reflag(p, pro) == (True, "new")
    assert _reflag(p, free) == (True, "classic")
    assert _reflag(p, old) == (False, "new")
    assert _reflag(p, {"user": {"id": "u", "country": "AT", "appVersion": "9.0.0"}}) == (False, "classic")


def _reflag(p: Project, context: dict[str, Any]) -> tuple[bool, str]:
    result = p.evaluate(context)["checkout"]
    return result["isEnabled"], result["config"]["key"]


def test_invalid_user_filters_and_json_logic_name_the_node(api: Api) -> None:
    p = project(api)
    p.feature(FEATURE)
    no_key = {k: v for k, v in PLAN_PRO.items() if k != "dataKey"}
    bad_type = {**PLAN_PRO, "dataKeyType": "Date"}
    bad_logic = {"type": "jsonLogic", "rule": {"no_such_operator": [1]}}
    cases = [
        (no_key, "targets[0].audience.filters.filters[1].dataKey"),
        (bad_type, "targets[0].audience.filters.filters[1].dataKeyType"),
        (bad_logic, "targets[0].audience.filters.filters[1].rule.no_such_operator"),
        ({**COUNTRY_DE, "subType": "planet"}, "targets[0].audience.filters.filters[1].subType"),
    ]
    for node, field in cases:
        filters = {"operator": "and", "filters": [COUNTRY_DE, node]}
        r = p.configure("checkout", "development", {"targets": [_target(filters, "new", "t")]})
        assert_error(r, 400, "validation_failed")
        assert fields(r) == [field], r.text
    r = p.post("/audiences", {"name": "Bad", "key": "bad", "filters": {"operator": "or", "filters": [bad_logic]}})
    assert_error(r, 400, "validation_failed")
    assert fields(r) == ["filters.filters[0].rule.no_such_operator"]
    # Nothing was stored: the environment still serves nothing for the feature.
    assert p.snapshot() == []
