"""Contract tests of DevCycle metrics, metric associations and results (issue 18), at the paths
of DevCycle's API, with results computed from events stored the way the intake stores them:
DevCycle SDK events (custom events with ``featureVars``, ``aggVariableEvaluated`` aggregates)
and the edge's own ``evaluation-counts`` records, through the events consumer's ``_store``."""

from __future__ import annotations

from typing import Any

from control_plane.events_consumer import _store
from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.devcycle_support import project, target
from tests.control_plane.routes.devcycle.support import record

METRIC = {
    "name": "New Signups",
    "key": "new-signups",
    "description": "New signups on the dashboard",
    "event": "Sign Ups",
    "dimension": "COUNT_PER_UNIQUE_USER",
    "optimize": "increase",
}
METRIC_FIELDS = set(METRIC) | {"_id", "_project", "source", "createdAt", "updatedAt"}
RANGE: dict[str, Any] = {"startDate": "2020-01-01T00:00:00Z", "endDate": "2100-01-01T00:00:00Z"}


def test_metric_crud(api: Api) -> None:
    p = project(api)
    r = p.post("/metrics", METRIC)
    assert r.status_code == 201, r.text
    m = r.json()
    assert set(m) == METRIC_FIELDS and m["source"] == "api"
    assert p.get("/metrics/new-signups").json() == m == p.get(f"/metrics/{m['_id']}").json()
    assert p.get("/metrics").json() == [m]
    assert p.get("/metrics", dimension="TOTAL_SUM").json() == []
    assert_error(p.post("/metrics", METRIC), 409, "conflict")
    for bad in [
        {**METRIC, "dimension": "MEDIAN"},
        {**METRIC, "key": "Bad Key"},
        {**METRIC, "optimize": "up"},
        {k: v for k, v in METRIC.items() if k != "event"},
    ]:
        assert_error(p.post("/metrics", bad), 400, "validation_failed")
    r = p.patch("/metrics/new-signups", {"dimension": "TOTAL_SUM", "name": "Signups"})
    assert r.status_code == 200 and r.json()["dimension"] == "TOTAL_SUM" and r.json()["name"] == "Signups"
    assert_error(p.get("/metrics/nope"), 404, "not_found")
    assert p.delete("/metrics/new-signups").status_code == 204
    assert_error(p.get("/metrics/new-signups"), 404, "not_found")


def test_associations_results_and_evaluations(api: Api) -> None:
    p = project(api)
    f = p.feature(controlVariation="off")
    assert p.configure("new-dash", "development", {"status": "active", "targets": [target()]}).status_code == 200
    assert p.post("/metrics", METRIC).status_code == 201
    r = p.post("/metric-associations", {"metric": "new-signups", "feature": "new-dash"})
    assert r.status_code == 201, r.text
    assert set(r.json()) == {"_project", "feature", "metric", "createdAt"} and r.json()["feature"]["key"] == "new-dash"
    assert_error(p.post("/metric-associations", {"metric": "new-signups", "feature": "new-dash"}), 409, "conflict")
    assert len(p.get("/metric-associations", feature="new-dash").json()) == 1

    on, off = (next(v["_id"] for v in f["variations"] if v["key"] == k) for k in ("on", "off"))
    env = p.env_id("development")
    records = []
    # 4 users on "on" (3 sign up), 4 on "off" (1 signs up); each sends one event with featureVars.
    for i in range(8):
        variation = on if i < 4 else off
        signs_up = i < 3 or i == 4
        event = {
            "type": "customEvent",
            "customType": "Sign Ups" if signs_up else "Visit",
            "userId": f"u{i}",
            "featureVars": {f["_id"]: variation},
        }
        records.append(record(i, env, "devcycle-event", event))
    records.append(
        record(
            100,
            env,
            "devcycle-event",
            {
                "type": "aggVariableEvaluated",
                "target": "show-new-dashboard",
                "value": 5,
                "userId": "host",
                "metaData": {"_feature": f["_id"], "_variation": on},
            },
        )
    )
    edge_counts = {
        "hour": "2030-01-01T10:00:00.000Z",
        "counts": [{"feature": "new-dash", "variation": "off", "count": 7}],
    }
    records.append(record(101, env, "evaluation-counts", edge_counts, "client"))
    with p.store().transaction() as db:
        _store(db, records)
        _store(db, records)  # replayed records add nothing

    r = p.get("/metrics/new-signups/results", feature="new-dash", environment="development", **RANGE)
    assert r.status_code == 200, r.text
    variations = {v["key"]: v for v in r.json()["result"]["variations"]}
    assert (variations["on"]["numerator"], variations["on"]["denominator"], variations["on"]["rate"]) == (3, 4, 0.75)
    assert (variations["off"]["numerator"], variations["off"]["denominator"]) == (1, 4)
    assert variations["off"]["percentDifference"] is None
    assert variations["on"]["percentDifference"] == 200.0 and variations["on"]["chanceToBeatControl"] > 0.9
    assert r.json()["result"]["dataSeries"]
    r = p.get(
        "/test-metric-results",
        feature="new-dash",
        control="off",
        optimize="increase",
        event="Sign Ups",
        dimension="TOTAL_SUM",
        **RANGE,
    )
    assert r.status_code == 200, r.text
    assert {v["key"]: v["rate"] for v in r.json()["result"]["variations"]} == {"on": 3.0, "off": 1.0}
    assert_error(p.get("/test-metric-results", feature="new-dash", **RANGE), 400, "validation_failed")
    assert_error(
        p.get("/metrics/new-signups/results", feature="new-dash", startDate="x", endDate="y"), 400, "validation_failed"
    )

    wide: dict[str, Any] = {"startDate": 0, "endDate": 4_102_444_800_000}
    r = p.get("/features/new-dash/results/total-evaluations", **wide)
    assert r.status_code == 200, r.text
    series = r.json()["result"]["evaluations"]
    assert sum(sum(point["values"].values()) for point in series) == 12
    assert {"date": "2030-01-01T10:00:00.000Z", "values": {"off": 7}} in series
    day = p.get("/features/new-dash/results/total-evaluations", period="day", sdkType="client", **wide).json()
    assert day["result"]["evaluations"] == [{"date": "2030-01-01T00:00:00.000Z", "values": {"off": 7}}]
    total = p.get("/results/total-evaluations", **wide).json()["result"]["evaluations"]
    assert sum(point["value"] for point in total) == 12
    assert p.get("/results/evaluations", **wide).status_code == 200
    assert_error(p.get("/results/total-evaluations", period="week"), 400, "validation_failed")

    r = api.client.request(
        "DELETE", f"{p.url}/metric-associations", json={"metric": "new-signups", "feature": "new-dash"}, headers=p.h
    )
    assert r.status_code == 204
    assert p.get("/metric-associations").json() == []
