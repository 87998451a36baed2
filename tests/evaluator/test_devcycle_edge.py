"""DevCycle features on the Reflag-shape routes of ``evaluator.Snapshot``.

A flag whose key names a feature of the snapshot's ``devcycle`` config is decided by DevCycle's
bucketing at the request's clock: for any user and any time, its answer is the variation that
``devcycle_bucket`` (checked bit for bit against ``@devcycle/bucketing``) assigns, with either
setting of ``disablePassthroughRollouts``. String custom data is coerced to the declared types;
``sdkVisibility`` hides flags from key kinds.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import evaluator

EXAMPLE = json.loads((Path(__file__).parent.parent / "vectors" / "devcycle-example.json").read_text())
CONFIG: dict[str, Any] = EXAMPLE["config"]
NOW = int(EXAMPLE["now"]["epochMs"])
DAY = 86_400_000


def document(config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The snapshot document: each DevCycle feature also as a Reflag-shape flag with a config
    (whose rules, never consulted for such a flag, would enable it for every user with an id)."""
    rule = {"filter": {"type": "context", "field": "user.id", "operator": "SET", "values": []}}
    features = [
        {"key": f["key"], "targeting": {"version": 7, "rules": [rule]}, "config": {"version": 7, "variants": []}}
        for f in config["features"]
    ]
    return {"features": features, "devcycle": config, **extra}


def compiled(config: dict[str, Any], **extra: Any) -> evaluator.Snapshot:
    return evaluator.Snapshot(orjson.dumps(document(config, **extra)))


def expected(snapshot: evaluator.Snapshot, user: dict[str, Any], now_ms: int) -> dict[str, tuple[str, Any]]:
    bucketed = snapshot.devcycle_bucket(user, now_ms)
    assert bucketed is not None
    features: dict[str, Any] = bucketed["features"]
    config = {f["key"]: f for f in CONFIG["features"]}
    out = {}
    for key, f in features.items():
        variation = next(v for v in config[key]["variations"] if v["_id"] == f["_variation"])
        names = {v["_id"]: v["key"] for v in CONFIG["variables"]}
        out[key] = (f["variationKey"], {names[x["_var"]]: x["value"] for x in variation["variables"]})
    return out


def context_of(user: dict[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in user.items() if k != "user_id"}
    return {"user": {"id": user["user_id"], **fields}} if "user_id" in user else {"user": fields}


scalars = st.one_of(st.text(max_size=6), st.integers(-5, 40), st.booleans(), st.sampled_from(["pro", "org-1", "7"]))
users = st.fixed_dictionaries(
    {"user_id": st.text(min_size=1, max_size=12)},
    optional={
        "email": st.sampled_from(["a@acme.com", "b@example.org", "user-1@x.io"]),
        "country": st.sampled_from(["DE", "US", "user-1", "CA"]),
        "platform": st.sampled_from(["Windows", "iOS", "Android"]),
        "platformVersion": st.sampled_from(["9.1", "10.0.2", "2.1"]),
        "appVersion": st.sampled_from(["1.2.3", "1.2.4", "2.1", "3.0.0"]),
        "customData": st.dictionaries(st.sampled_from(["score", "tenant", "orgId", "plan"]), scalars, max_size=4),
    },
)


@settings(max_examples=300, deadline=None)
@given(user=users, offset=st.integers(-40 * DAY, 40 * DAY), passthrough=st.booleans())
def test_flags_are_what_devcycle_buckets(user: dict[str, Any], offset: int, passthrough: bool) -> None:
    config = copy.deepcopy(CONFIG)
    config["project"]["settings"]["disablePassthroughRollouts"] = not passthrough
    snapshot = compiled(config)
    now = NOW + offset
    want = expected(snapshot, user, now)
    got = orjson.loads(snapshot.evaluate_all(context_of(user), now_ms=now))
    for f in config["features"]:
        key = f["key"]
        flag = got[key]
        assert flag["isEnabled"] == (key in want)
        assert flag["targetingVersion"] == 7
        if key in want:
            assert (flag["config"]["key"], flag["config"]["payload"]) == want[key]
            assert flag["config"]["version"] == 7
        else:
            assert "config" not in flag
        single = snapshot.evaluate_flag(key, context_of(user), now_ms=now)
        assert single is not None and single["value"] == (key in want)
        assert single["reason"] in (("SPLIT", "TARGETING_MATCH") if key in want else ("DEFAULT",))
    enabled = orjson.loads(snapshot.evaluate_all(context_of(user), now_ms=now, enabled_only=True))
    assert set(enabled) == set(want)


def test_debug_reports_one_result_per_target() -> None:
    snapshot = compiled(CONFIG)
    user = EXAMPLE["cases"][0]["user"]
    debug = orjson.loads(snapshot.evaluate_all(context_of(user), now_ms=NOW, debug=True))
    for f in CONFIG["features"]:
        results = debug[f["key"]]["ruleEvaluationResults"]
        assert len(results) == len(f["configuration"]["targets"])
        assert any(results) == debug[f["key"]]["isEnabled"]
    splits = dict(snapshot.devcycle_splits())
    assert splits["feature-0-2"] == [True, True, False]


def test_query_string_custom_data_is_coerced_by_declared_type() -> None:
    config = copy.deepcopy(CONFIG)
    config["features"] = [
        {
            "_id": "f1",
            "key": "typed",
            "type": "release",
            "variations": [{"_id": "v1", "key": "on", "name": "On", "variables": []}],
            "configuration": {
                "_id": "c1",
                "targets": [
                    {
                        "_id": "t1",
                        "_audience": {
                            "_id": "a1",
                            "filters": {
                                "operator": "and",
                                "filters": [
                                    {
                                        "type": "user",
                                        "subType": "customData",
                                        "comparator": ">",
                                        "dataKey": "seats",
                                        "dataKeyType": "Number",
                                        "values": [10],
                                    },
                                    {
                                        "type": "user",
                                        "subType": "customData",
                                        "comparator": "=",
                                        "dataKey": "beta",
                                        "dataKeyType": "Boolean",
                                        "values": [True],
                                    },
                                ],
                            },
                        },
                        "distribution": [{"_variation": "v1", "percentage": 1}],
                    }
                ],
            },
        }
    ]
    types = {"seats": "Number", "beta": "Boolean"}
    typed = compiled(config, customDataTypes=types)
    untyped = compiled(config)

    def enabled(snapshot: evaluator.Snapshot, seats: str, beta: str) -> bool:
        pairs = [("user.id", "u"), ("user.customData.seats", seats), ("user.customData.beta", beta)]
        return bool(orjson.loads(snapshot.evaluate_all_flat(pairs, now_ms=NOW))["typed"]["isEnabled"])

    assert enabled(typed, "11", "true") and enabled(typed, "1e3", "true")
    assert not enabled(typed, "10", "true") and not enabled(typed, "11", "false")
    assert not enabled(typed, "eleven", "true") and not enabled(typed, "11", "yes")
    # Without declared types the strings stay strings, which DevCycle's typed filters never match.
    assert not enabled(untyped, "11", "true")
    # The same coercion on every route: nested contexts and DevCycle's bucketed config.
    nested = {"user": {"id": "u", "customData": {"seats": "12", "beta": "true"}}}
    assert orjson.loads(typed.evaluate_all(nested, now_ms=NOW))["typed"]["isEnabled"] is True
    bucketed = typed.devcycle_bucket({"user_id": "u", "customData": {"seats": "12", "beta": "true"}}, NOW)
    assert bucketed is not None and "typed" in bucketed["features"]


def test_sdk_visibility_hides_flags_from_key_kinds() -> None:
    hidden = {"feature-0-0": {"client": False}, "feature-0-4": {"mobile": False, "server": False}}
    snapshot = compiled(CONFIG, sdkVisibility=hidden)
    context = context_of(EXAMPLE["cases"][0]["user"])
    every = [f["key"] for f in CONFIG["features"]]

    def keys(kind: str | None) -> list[str]:
        return list(orjson.loads(snapshot.evaluate_all(context, now_ms=NOW, key_kind=kind)))

    assert keys(None) == every
    assert keys("client") == [k for k in every if k != "feature-0-0"]
    assert keys("mobile") == keys("server") == [k for k in every if k != "feature-0-4"]
    assert snapshot.evaluate_flag("feature-0-0", context, key_kind="client") is None
    assert snapshot.evaluate_flag("feature-0-0", context, key_kind="server") is not None
    assert snapshot.hidden_from("server") == ["feature-0-4"]
    # DevCycle's bucketed config for a kind of key leaves out what is hidden from it.
    user = EXAMPLE["cases"][0]["user"]
    everything = snapshot.devcycle_bucket(user, NOW)
    for_client = snapshot.devcycle_bucket(user, NOW, key_kind="client")
    assert everything is not None and for_client is not None
    assert "feature-0-0" in everything["features"]
    assert set(for_client["features"]) == set(everything["features"]) - {"feature-0-0"}
    assert not any(k.startswith("feature-0-0-") for k in for_client["variables"])
    with pytest.raises(ValueError, match="unknown key kind"):
        snapshot.evaluate_all(context, key_kind="browser")
    with pytest.raises(evaluator.RuleError) as e:
        compiled(CONFIG, sdkVisibility={"feature-0-0": {"web": False}})
    assert e.value.path == '$.sdkVisibility["feature-0-0"].web'
