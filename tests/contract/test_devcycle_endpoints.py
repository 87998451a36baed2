"""Every endpoint of the DevCycle management API document (seed 002), walked in the document's
order: each one is in ``/openapi.json`` and answers a real request as documented (status and the
fields checked). An endpoint not driven fails unless it is named in the explicit pending set
(:mod:`tests.contract.devcycle_endpoints`, empty since issue 18)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.contract.devcycle_endpoints import ENDPOINTS, PENDING
from tests.control_plane.conftest import Api
from tests.control_plane.devcycle_support import BOOL_FEATURE, PRO, project, target

SEED = "002_846db8739c38268e.txt"


def _seed_text() -> str:
    # A copy of the seed document lives in the repository: a clone runs this test alone.
    return (Path(__file__).parent / "seeds" / SEED).read_text()


def test_the_list_is_the_seeds() -> None:
    text = _seed_text()
    assert len(ENDPOINTS) == 88 and len({(m, p) for m, p, _ in ENDPOINTS}) == 88
    missing = [(m, p, t) for m, p, t in ENDPOINTS if t not in text]
    assert not missing
    # The anchors follow the document's order.
    positions = [text.find(t) for _, _, t in ENDPOINTS if text.count(t) == 1]
    assert positions == sorted(positions)


# One real request per served endpoint, in an order where each finds what it needs; path
# parameters are filled from this world (``World``: names to values, such as ids answered by
# earlier requests).
Check = Callable[[Any], bool]
World = dict[str, str]
Prepare = Callable[[Api, dict[str, str], World], None]


@dataclass(frozen=True)
class Call:
    params: dict[str, Any]
    body: Any  # or a function of the world
    status: int
    check: Check
    keep: str | None  # the world name the answer's ``_id`` is kept under
    before: Prepare | None  # makes what the request needs first


CALLS: dict[tuple[str, str], Call] = {}


def _call(
    method: str,
    path: str,
    status: int,
    body: Any = None,
    params: dict[str, Any] | None = None,
    check: Check = lambda j: True,
    keep: str | None = None,
    before: Prepare | None = None,
) -> None:
    CALLS[(method, path)] = Call(params or {}, body, status, check, keep, before)


P = "/v1/projects/{project}"
F = P + "/features/{feature}"
F2 = "/v2/projects/{project}/features/{feature}"
_call("POST", "/v1/projects", 201, {"name": "Other", "key": "other"}, check=lambda j: j["key"] == "other")
_call("GET", "/v1/projects", 200, check=lambda j: {p["key"] for p in j} >= {"app", "other"})
_call("GET", "/v1/projects/{key}", 200, check=lambda j: j["key"] == "app")
_call("PATCH", "/v1/projects/{key}", 200, {"description": "d"}, check=lambda j: j["description"] == "d")
_call(
    "PATCH",
    "/v1/projects/{key}/settings",
    200,
    {"settings": {"edgeDB": {"enabled": True}}},
    check=lambda j: j["settings"]["edgeDB"]["enabled"] is True,
)
WORKFLOW = {"enabled": True, "allowPublisherBypass": True, "defaultReviewers": []}
_call(
    "PATCH",
    "/v1/projects/{key}/settings/protected",
    200,
    {"settings": {"featureApprovalWorkflow": WORKFLOW}},
    check=lambda j: j["settings"]["featureApprovalWorkflow"] == WORKFLOW and j["settings"]["edgeDB"]["enabled"],
)
_call("GET", "/v1/projects/{key}/staleness", 200, check=lambda j: j == [])
_call("POST", P + "/environments", 201, {"name": "Staging", "key": "staging", "type": "staging"})
_call("GET", P + "/environments", 200, check=lambda j: len(j) == 3)
_call("GET", P + "/environments/{key}", 200, check=lambda j: j["key"] == "staging")
_call("PATCH", P + "/environments/{key}", 200, {"description": "s"}, check=lambda j: j["description"] == "s")
_call(
    "POST",
    P + "/environments/{environment}/sdk-keys",
    200,
    {"client": True},
    check=lambda j: len(j["sdkKeys"]["client"]) == 2 and all(k["key"] for k in j["sdkKeys"]["client"]),
)


def _client_key(api: Api, h: dict[str, str], world: World) -> None:
    env = api.client.get("/v1/projects/app/environments/staging", headers=h).json()
    world["client_key"] = env["sdkKeys"]["client"][0]["key"]


_call(
    "DELETE",
    P + "/environments/{environment}/sdk-keys/{key}",
    200,
    check=lambda j: j["sdkKeys"]["client"][0]["compromised"] is True,
    before=_client_key,
)
_call(
    "POST",
    "/v2/projects/{project}/features",
    201,
    {"key": "v2-feature", "name": "V2"},
    check=lambda j: j["changeRequests"] == [] and "staleness" in j,
)
_call(
    "GET",
    "/v2/projects/{project}/features",
    200,
    {},
    params={"keys": "new-dash,v2-feature"},
    check=lambda j: sorted(f["key"] for f in j) == ["new-dash", "v2-feature"],
)
_call("GET", F2, 200, check=lambda j: j["key"] == "new-dash" and j["latestUpdate"])
_call("PATCH", F2, 200, {"description": "v2"}, check=lambda j: j["description"] == "v2")
_call("PATCH", F2 + "/summary", 200, {"markdown": "# s"}, check=lambda j: j["markdown"] == "# s")
_call("GET", F2 + "/staleness", 200, check=lambda j: j["stale"] is False and j["key"] == "new-dash")
_call("PATCH", F2 + "/staleness", 200, {"disabled": True}, check=lambda j: j["disabled"] is True)
_call("GET", F + "/audit", 200, check=lambda j: j and j[0]["changes"][0]["action"] == "feature.staleness")
_call("POST", F + "/variations", 201, {"key": "third", "name": "Third", "variables": {"show-new-dashboard": True}})
_call("GET", F + "/variations", 200, check=lambda j: [v["key"] for v in j] == ["on", "off", "third"])
_call("GET", F + "/variations/{key}", 200, check=lambda j: j["key"] == "third")
_call("PATCH", F + "/variations/{key}", 200, {"name": "3rd"})
_call("POST", P + "/variables", 201, {"key": "free-var", "type": "String"})
_call("GET", P + "/variables", 200, check=lambda j: "free-var" in {v["key"] for v in j})
_call("GET", P + "/variables/{key}", 200, check=lambda j: j["key"] == "free-var")
_call("PATCH", P + "/variables/{key}", 200, {"description": "v"})
_call("PATCH", P + "/variables/{key}/status", 200, {"status": "archived"}, check=lambda j: j["status"] == "archived")
_call("POST", P + "/audiences", 201, {"name": "Pro", "key": "pro", "filters": PRO})
_call("GET", P + "/audiences", 200, check=lambda j: [a["key"] for a in j] == ["pro"])
_call("GET", P + "/audiences/{key}", 200, check=lambda j: j["key"] == "pro")
_call("PATCH", P + "/audiences/{key}", 200, {"description": "a"})
_call("GET", P + "/audiences/{key}/usage", 200, check=lambda j: j == {"features": [], "audiences": []})
_call("POST", P + "/customProperties", 201, {"name": "Plan", "key": "plan", "type": "String", "propertyKey": "plan"})
_call("GET", P + "/customProperties", 200, check=lambda j: [c["key"] for c in j] == ["plan"])
_call("GET", P + "/customProperties/{key}", 200, check=lambda j: j["key"] == "plan")
_call("PATCH", P + "/customProperties/{key}", 200, {"name": "Plan 2"})
METRIC = {"name": "Buys", "key": "buys", "event": "buy", "dimension": "COUNT_PER_UNIQUE_USER", "optimize": "increase"}
RANGE = {"startDate": "2020-01-01T00:00:00Z", "endDate": "2100-01-01T00:00:00Z"}
_call("POST", P + "/metrics", 201, METRIC, check=lambda j: j["key"] == "buys" and j["dimension"] == METRIC["dimension"])
_call(
    "GET",
    P + "/metrics",
    200,
    params={"dimension": METRIC["dimension"]},
    check=lambda j: [m["key"] for m in j] == ["buys"],
)
_call("PATCH", P + "/metrics/{key}", 200, {"optimize": "decrease"}, check=lambda j: j["optimize"] == "decrease")
_call(
    "GET",
    P + "/metrics/{metric}/results",
    200,
    params={"feature": "new-dash", **RANGE},
    check=lambda j: j["cached"] is False and {v["key"] for v in j["result"]["variations"]} >= {"on", "off"},
)
_call(
    "GET",
    P + "/test-metric-results",
    200,
    params={
        "feature": "new-dash",
        "control": "off",
        "optimize": "increase",
        "event": "buy",
        "dimension": "TOTAL_SUM",
        **RANGE,
    },
    check=lambda j: "variations" in j["result"],
)
_call(
    "POST",
    P + "/metric-associations",
    201,
    {"metric": "buys", "feature": "new-dash"},
    check=lambda j: (j["metric"]["key"], j["feature"]["key"]) == ("buys", "new-dash"),
)
_call(
    "GET",
    P + "/metric-associations",
    200,
    params={"metric": "buys"},
    check=lambda j: [(a["metric"]["key"], a["feature"]["key"]) for a in j] == [("buys", "new-dash")],
)
# Self-targeting: the caller's profile, an override in production, the team's and the caller's lists.
_call("GET", P + "/userProfile/current", 200, check=lambda j: j["dvcUserId"] is None and j["_project"])
_call("PATCH", P + "/userProfile/current", 200, {"dvcUserId": "qa-1"}, check=lambda j: j["dvcUserId"] == "qa-1")
_call(
    "PUT",
    F + "/overrides/current",
    200,
    {"environment": "production", "variation": "off"},
    check=lambda j: j["dvcUserId"] == "qa-1" and j["_variation"],
)
_call(
    "GET",
    F + "/overrides",
    200,
    params={"addMetadata": "true"},
    check=lambda j: j["uniqueTeamMembers"] == 1 and [o["dvcUserId"] for o in j["overrides"]["production"]] == ["qa-1"],
)
_call(
    "GET",
    P + "/overrides/current",
    200,
    check=lambda j: (
        [(o["featureName"], o["environmentName"], o["variationName"]) for o in j]
        == [("New dashboard", "Production", "Off")]
    ),
)
_call(
    "POST",
    P + "/webhooks",
    201,
    {"name": "Slack", "url": "https://hooks.example.com/x", "events": ["createdFeature", "modifiedFeature"]},
    check=lambda j: j["secret"] and j["events"] == ["createdFeature", "modifiedFeature"],
    keep="webhook",
)
_call("GET", P + "/webhooks", 200, check=lambda j: [w["name"] for w in j] == ["Slack"])
_call("PATCH", P + "/webhooks/{id}", 200, {"description": "w"}, check=lambda j: j["description"] == "w")
_call("GET", P + "/webhooks/{id}", 200, check=lambda j: j["description"] == "w" and "secret" not in j)
_call("DELETE", P + "/webhooks/{id}", 200, check=lambda j: j["name"] == "Slack")
for results in (F + "/results/total-evaluations", P + "/results/evaluations", P + "/results/total-evaluations"):
    _call("GET", results, 200, check=lambda j: j["cached"] is False and "evaluations" in j["result"])
_call(
    "PATCH",
    "/v1/semantic/projects/{project}/audiences/{key}",
    200,
    {"instructions": [{"op": "addFilterValues", "action": {"filterIndex": "0", "values": ["enterprise"]}}]},
    check=lambda j: j["filters"]["filters"][0]["values"] == ["pro", "enterprise"],
)
_call(
    "POST",
    "/v1/integrations/dynatrace",
    201,
    {"dynatraceEnvironmentId": "dt1", "accessToken": "t0k3n-value", "environmentUrl": "https://dt1.live"},
)
_call("GET", "/v1/integrations/dynatrace", 200, check=lambda j: j["environments"][0]["dynatraceEnvironmentId"] == "dt1")
# A change request proposing a v2 feature PATCH, through review to apply; another one cancelled.
CR = F2 + "/change-requests"
PROPOSAL = {"path": "/v2/projects/app/features/new-dash", "method": "PATCH", "body": {"description": "reviewed"}}


def _another_change_request(api: Api, h: dict[str, str], world: World) -> None:
    r = api.client.post("/v2/projects/app/features/new-dash/change-requests", json=PROPOSAL, headers=h)
    assert r.status_code == 201, r.text
    world["cr"] = r.json()["_id"]


_call("POST", CR, 201, PROPOSAL, check=lambda j: (j["status"], j["operation"]) == ("draft", "featureUpdate"), keep="cr")
_call("GET", CR, 200, check=lambda j: [c["status"] for c in j] == ["draft"])
_call(
    "GET",
    "/v2/projects/{project}/change-requests",
    200,
    check=lambda j: [c["feature"]["key"] for c in j] == ["new-dash"],
)
_call("GET", CR + "/{id}", 200, check=lambda j: j["changes"] == [PROPOSAL])
_call(
    "PATCH",
    CR + "/{id}/submit",
    200,
    lambda world: {"description": "please", "reviewers": [world["owner"]]},
    check=lambda j: j["status"] == "pending",
)
_call(
    "PATCH",
    CR + "/{id}/review",
    200,
    {"action": "approved", "comment": "ok"},
    check=lambda j: j["status"] == "approved",
)
_call("GET", CR + "/latest", 200, check=lambda j: j["status"] == "approved")
_call(
    "PATCH",
    CR + "/{id}/apply",
    200,
    {"description": "go", "action": "applied"},
    check=lambda j: j["status"] == "applied",
)
_call("PATCH", CR + "/{id}/cancel", 200, check=lambda j: j["status"] == "cancelled", before=_another_change_request)
_call("GET", F + "/configurations", 200, check=lambda j: len(j) == 3)
_call(
    "PATCH",
    F + "/configurations",
    200,
    {"status": "active", "targets": [target()]},
    params={"environment": "production"},
)
_call("POST", P + "/features", 201, {"key": "v1-feature", "name": "V1"})
_call("GET", P + "/features", 200, check=lambda j: {"new-dash", "v1-feature", "v2-feature"} <= {f["key"] for f in j})
_call("POST", P + "/features/multiple", 201, [{"key": "m1", "name": "M1"}], check=lambda j: j[0]["key"] == "m1")
_call("GET", F, 200, check=lambda j: (j["key"], j["description"]) == ("new-dash", "reviewed"))  # the applied change
_call("PATCH", F, 200, {"name": "New dash"})
_call("PATCH", F + "/status", 200, {"status": "complete", "staticVariation": "on"})
_call("GET", F + "/static-configuration", 200, check=lambda j: j["variables"] == {"show-new-dashboard": True})
_call("PATCH", F + "/static-configuration", 200, {"description": "static"})
_call("GET", F2 + "/static-configuration", 200, check=lambda j: j["description"] == "static")
_call(
    "PATCH",
    F2 + "/static-configuration",
    200,
    {"environments": {"staging": {"status": "active"}}},
    check=lambda j: j["environments"]["staging"] == {"status": "active"},
)
_call("PATCH", F2 + "/status", 200, {"status": "active"}, check=lambda j: j["status"] == "active")
_call("POST", F + "/integrations/jira/issues", 201, {"issueId": "DC-1"}, check=lambda j: j == {"issueId": "DC-1"})
_call("DELETE", F + "/integrations/jira/issues/{issue_id}", 200, check=lambda j: j == {"issueId": "DC-1"})
_call("DELETE", F, 204)
_call("DELETE", P + "/environments/{key}", 204)


def _shape(path: str) -> str:
    """The path with its parameters unnamed: ``/v1/projects/{key}`` is ``/v1/projects/{project}``."""
    return re.sub(r"{[^}]+}", "{}", path)


def _fill(path: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, path
    return path


def _values(path: str, world: World) -> dict[str, str]:
    """The path parameters of ``path``: ``{key}``/``{id}`` name the resource the path is about."""
    v = {
        "project": "app",
        "feature": "new-dash",
        "environment": "staging",
        "issue_id": "DC-1",
        "metric": "buys",
    }
    if path.startswith("/v1/projects/{key}"):
        v["key"] = "app"
    elif "/variations/" in path:
        v["key"] = "third"
    elif "/variables/" in path:
        v["key"] = "free-var"
    elif "/audiences/" in path:
        v["key"] = "pro"
    elif "/customProperties/" in path:
        v["key"] = "plan"
    elif "/metrics/" in path:
        v["key"] = "buys"
    elif "/sdk-keys/" in path:
        v["key"] = world["client_key"]
    elif "/environments/" in path:
        v["key"] = "staging"
    if "/webhooks/" in path:
        v["id"] = world["webhook"]
    elif "/change-requests/" in path:
        v["id"] = world["cr"]
    return v


def test_every_documented_endpoint(api: Api) -> None:
    p = project(api)
    p.environment("production", "production")
    p.feature(BOOL_FEATURE)
    doc = api.client.get("/openapi.json").json()
    served = {(m.upper(), _shape(path)) for path, item in doc["paths"].items() for m in item}
    world: World = {"owner": p.owner.user_id}
    unaccounted, wrong = [], []
    documented = {(m, path) for m, path, _ in ENDPOINTS}
    assert documented >= PENDING
    both = {(m, path) for m, path in PENDING if (m, _shape(path)) in served}
    assert not both, f"served but still listed as pending: {sorted(both)}"
    assert set(CALLS) <= documented
    for (method, path), call in CALLS.items():  # in CALLS order: each request finds what the earlier made
        assert (method, _shape(path)) in served, f"{method} {path} is not in /openapi.json"
        if call.before is not None:
            call.before(api, p.h, world)
        url = _fill(path, _values(path, world))
        body = call.body(world) if callable(call.body) else call.body
        r = api.client.request(method, url, json=body, params=call.params, headers=p.h)
        ok = r.status_code == call.status and (call.status == 204 or call.check(r.json()))
        if not ok:
            wrong.append(f"{method} {url}: {r.status_code} {r.text[:300]}")
        elif call.keep is not None:
            world[call.keep] = r.json()["_id"]
    for method, path, _ in ENDPOINTS:
        if (method, path) not in CALLS and (method, path) not in PENDING:
            unaccounted.append(f"{method} {path}")
    assert not wrong, "\n".join(wrong)
    assert not unaccounted, f"neither driven nor pending: {unaccounted}"
    # Every documented method and path is in /openapi.json (all 88: nothing is pending).
    assert not {(m, p) for m, p, _ in ENDPOINTS if (m, _shape(p)) not in served}
    # Pending endpoints are really not served (a 404 from the router, in DevCycle's shape or ours).
    for method, path in sorted(PENDING):
        url = _fill(path, {k: "x" for k in ("project", "feature", "key", "id", "issue_id", "metric", "environment")})
        assert api.client.request(method, url, headers=p.h).status_code in (404, 405), f"{method} {url}"
