"""The DevCycle section of an environment's snapshot (``control_plane.devcycle_config``): DevCycle's
server SDK config shape, stable bytes, which features it holds, custom data types and
``sdkVisibility``."""

from __future__ import annotations

from typing import Any

import orjson

from tests.control_plane.conftest import Api
from tests.control_plane.devcycle_support import ALL, BOOL_FEATURE, PRO, target
from tests.control_plane.routes.devcycle.support import setup


def feature(key: str) -> dict[str, Any]:
    """A two-variation Boolean feature with its own variable."""
    return {
        "key": key,
        "name": key,
        "variables": [{"key": f"{key}-on", "type": "Boolean"}],
        "variations": [
            {"key": "on", "name": "On", "variables": {f"{key}-on": True}},
            {"key": "off", "name": "Off", "variables": {f"{key}-on": False}},
        ],
    }


SEATS = {"type": "user", "subType": "customData", "dataKey": "seats", "comparator": ">", "values": [3]}
BETA = {
    "type": "user",
    "subType": "customData",
    "dataKey": "beta",
    "dataKeyType": "Boolean",
    "comparator": "=",
    "values": [True],
}


def test_the_section_is_devcycles_server_config(api: Api) -> None:
    p = setup(api)
    r = p.post("/customProperties", {"name": "Plan", "key": "plan", "type": "String", "propertyKey": "plan"})
    assert r.status_code == 201, r.text
    p.feature(BOOL_FEATURE, sdkVisibility={"client": False})
    halves = [{"_variation": "on", "percentage": 0.5}, {"_variation": "off", "percentage": 0.5}]
    split = {**target(ALL), "distribution": halves}
    assert p.configure("new-dash", "development", {"status": "active", "targets": [split]}).status_code == 200
    # A target mixing in a Reflag node: DevCycle's bucketing cannot read it.
    p.feature(feature("mixed"))
    assert p.configure("mixed", "development", {"status": "active", "targets": [target(PRO)]}).status_code == 200
    p.feature(feature("typed"))
    typed = {"operator": "or", "filters": [SEATS, BETA]}
    assert p.configure("typed", "development", {"status": "active", "targets": [target(typed)]}).status_code == 200
    r = p.patch("/features/typed/status", {"status": "complete", "staticVariation": "on"})
    assert r.status_code == 200, r.text

    document = p.document()
    assert orjson.dumps(document) == orjson.dumps(p.document()), "the same data gives the same bytes"
    config = document["devcycle"]
    members = {"project", "environment", "features", "variables", "variableHashes", "audiences", "debugUsers"}
    assert set(config) == members
    assert config["project"]["key"] == "app" and config["project"]["settings"]["edgeDB"] == {"enabled": False}
    assert config["environment"] == {"_id": p.env_id("development"), "key": "development"}
    features: dict[str, Any] = {f["key"]: f for f in config["features"]}
    assert set(features) == {"new-dash", "typed"}
    dash = features["new-dash"]
    assert [v["key"] for v in dash["variations"]] == ["on", "off"]
    variable = next(v for v in config["variables"] if v["key"] == "show-new-dashboard")
    assert variable["type"] == "Boolean"
    assert dash["variations"][0]["variables"] == [{"_var": variable["_id"], "value": True}]
    (t,) = dash["configuration"]["targets"]
    assert t["_audience"]["filters"] == ALL and [d["percentage"] for d in t["distribution"]] == [0.5, 0.5]
    # A complete feature serves its static variation to everyone.
    (static,) = features["typed"]["configuration"]["targets"]
    on = next(v["_id"] for v in features["typed"]["variations"] if v["key"] == "on")
    assert static["distribution"] == [{"_variation": on, "percentage": 1}]
    # Declared types first, then the filters' types (dataKeyType, else the first value's).
    assert document["customDataTypes"] == {"beta": "Boolean", "plan": "String", "seats": "Number"}
    assert document["sdkVisibility"] == {"new-dash": {"client": False}}
    # The edge compiles it, and the mixed feature keeps its Reflag-shape evaluation.
    assert p.compiled().devcycle_splits() == [("new-dash", [True]), ("typed", [False])]
    assert p.evaluate({"user": {"id": "u", "plan": "pro"}})["mixed"]["isEnabled"] is True
