"""The DevCycle CLI's requests, replayed against a real control plane (issue 18 acceptance).

The CLI (``@devcycle/cli``) cannot run here: it is not on the npm registry this project
installs from, and its API base URL is fixed in its source (``src/api/common.ts``:
``https://api.devcycle.com``, or ``http://localhost:4001`` with ``DVC_API_LOCAL=1``), its token
comes from ``auth.devcycle.com`` (client credentials), which nothing here can stand in for. So
each request below is the CLI's own (v6.2.2, ``src/api/*.ts`` and the commands that build the
bodies): method, path, query, body, and its headers — ``Authorization`` carrying the bare access
token (``buildHeaders``), ``dvc-referrer``/``dvc-referrer-metadata`` — and the checks are what
the CLI reads from the answers: ``sdkKeys[type][last].key`` and ``compromised`` (``keys get``),
the ``count`` header it pages by (``fetchAllCompletedOrArchivedFeatures``,
``fetchAllVariables``), 404 as "not found" (``fetchFeatureByKey``), and ``message`` of an error
body (its response interceptor prints ``responseData.message``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bench.processes import bootstrap_project
from tests.support import services

PROJECT = "shop"


@dataclass(frozen=True)
class Cli:
    client: httpx.Client
    headers: dict[str, str]
    keys: dict[str, str]


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    data: Path = tmp_path_factory.mktemp("dvc-cli")
    with services.control_plane(data, log="cp.log", timeout=60) as client:
        auth, keys = bootstrap_project(client)
        # DevCycle projects come with these three environments; the CLI's quick create configures them.
        for key in ("development", "staging", "production"):
            r = client.post(
                f"/v1/projects/{PROJECT}/environments", json={"name": key, "key": key, "type": key}, headers=auth
            )
            assert r.status_code == 201, r.text
        token = auth["Authorization"].removeprefix("Bearer ")
        headers = {
            "Content-Type": "application/json",
            "Authorization": token,  # buildHeaders(token): the bare token
            "dvc-referrer": "cli",
            "dvc-referrer-metadata": json.dumps({"command": "features get", "version": "6.2.2", "caller": "cli"}),
        }
        yield Cli(client, headers, keys)


def test_keys_get(cli: Cli) -> None:
    """``dvc keys get --env prod --type server``: fetchEnvironmentByKey, then the last key."""
    r = cli.client.get(f"/v1/projects/{PROJECT}/environments/prod", headers=cli.headers)
    assert r.status_code == 200, r.text
    for kind in ("client", "server", "mobile"):
        active = r.json()["sdkKeys"][kind]
        current = active[-1]
        assert current["compromised"] is False and current["key"] == cli.keys[kind]
    # Rotation (POST .../sdk-keys) makes the new key the last one.
    r = cli.client.post(
        f"/v1/projects/{PROJECT}/environments/prod/sdk-keys", json={"server": True}, headers=cli.headers
    )
    assert r.status_code == 200, r.text
    r = cli.client.get(f"/v1/projects/{PROJECT}/environments/prod", headers=cli.headers)
    server = r.json()["sdkKeys"]["server"]
    assert len(server) == 2 and server[0]["key"] == cli.keys["server"] and server[-1]["key"] != cli.keys["server"]
    environments = cli.client.get(f"/v1/projects/{PROJECT}/environments", headers=cli.headers).json()
    assert {e["key"] for e in environments} == {"prod", "development", "staging", "production"}


def quick_feature(key: str, name: str) -> dict[str, object]:
    """``mergeQuickFeatureParamsWithAnswers`` (src/utils/features/quickCreateFeatureUtils.ts)."""
    everyone = {"name": "All Users", "filters": {"filters": [{"type": "all"}], "operator": "and"}}
    target = {"distribution": [{"percentage": 1, "_variation": "variation-on"}], "audience": everyone}
    return {
        "name": name,
        "key": key,
        "description": "",
        "variables": [{"name": name, "key": key, "type": "Boolean"}],
        "configurations": {
            "development": {"targets": [target], "status": "active"},
            "staging": {"targets": [target], "status": "inactive"},
            "production": {"targets": [target], "status": "inactive"},
        },
        "variations": [
            {"key": "variation-on", "name": "Variation On", "variables": {key: True}},
            {"key": "variation-off", "name": "Variation Off", "variables": {key: False}},
        ],
    }


def test_features(cli: Cli) -> None:
    base = f"/v2/projects/{PROJECT}/features"
    r = cli.client.post(base, json=quick_feature("checkout-v2", "Checkout v2"), headers=cli.headers)
    assert r.status_code == 201, r.text
    feature = r.json()
    assert [c["status"] for c in feature["configurations"]][-3:] == ["active", "inactive", "inactive"]
    # fetchFeatures with the CLI's queries.
    queries: dict[str, str | int] = {
        "page": 1,
        "perPage": 100,
        "sortBy": "createdAt",
        "sortOrder": "desc",
        "type": "release",
        "status": "active",
        "search": "checkout",
        "staleness": "notStale",
    }
    r = cli.client.get(base, params=queries, headers=cli.headers)
    assert r.status_code == 200 and [f["key"] for f in r.json()] == ["checkout-v2"]
    # fetchFeatureByKey: found, and 404 read as "not found".
    assert cli.client.get(f"{base}/checkout-v2", headers=cli.headers).json()["_id"] == feature["_id"]
    assert cli.client.get(f"{base}/nope", headers=cli.headers).status_code == 404
    # updateFeature (PATCH .../:feature) and updateFeatureStatus.
    r = cli.client.patch(f"{base}/{feature['_id']}", json={"name": "Checkout", "description": "d"}, headers=cli.headers)
    assert r.status_code == 200 and r.json()["name"] == "Checkout"
    r = cli.client.patch(
        f"{base}/checkout-v2/status",
        json={"status": "complete", "staticVariation": "variation-on"},
        headers=cli.headers,
    )
    assert r.status_code == 200 and r.json()["status"] == "complete"
    # fetchAllCompletedOrArchivedFeatures: pages by the "count" header.
    r = cli.client.get(f"{base}?perPage=1000&page=1&status=complete", headers=cli.headers)
    assert r.headers["count"] == "1" and [f["key"] for f in r.json()] == ["checkout-v2"]
    assert cli.client.get(f"{base}?perPage=1000&page=1&status=archived", headers=cli.headers).headers["count"] == "0"
    # getFeatureAuditLogHistory.
    r = cli.client.get(f"/v1/projects/{PROJECT}/features/checkout-v2/audit", headers=cli.headers)
    assert r.status_code == 200
    assert [e["changes"][0]["action"] for e in r.json()][:2] == ["feature.status", "feature.update"]
    # deleteFeature (v1).
    assert cli.client.delete(f"/v1/projects/{PROJECT}/features/checkout-v2", headers=cli.headers).status_code == 204
    assert cli.client.get(f"{base}/checkout-v2", headers=cli.headers).status_code == 404


def test_variables(cli: Cli) -> None:
    base = f"/v1/projects/{PROJECT}/variables"
    body = {"key": "banner-text", "name": "Banner text", "type": "String", "description": "shown on top"}
    r = cli.client.post(base, json=body, headers=cli.headers)
    assert r.status_code == 201, r.text
    r = cli.client.get(
        base, params={"page": 1, "perPage": 100, "search": "banner", "type": "String"}, headers=cli.headers
    )
    assert [v["key"] for v in r.json()] == ["banner-text"]
    # fetchAllVariables: pages by the "count" header.
    r = cli.client.get(f"{base}?perPage=1000&page=1&status=active", headers=cli.headers)
    assert int(r.headers["count"]) == len(r.json()) >= 1
    assert cli.client.get(f"{base}/banner-text", headers=cli.headers).json()["type"] == "String"
    r = cli.client.patch(f"{base}/banner-text", json={"name": "Banner"}, headers=cli.headers)
    assert r.status_code == 200 and r.json()["name"] == "Banner"
    assert cli.client.delete(f"{base}/banner-text", headers=cli.headers).status_code == 204


def test_audiences(cli: Cli) -> None:
    base = f"/v1/projects/{PROJECT}/audiences"
    filters = {
        "operator": "and",
        "filters": [{"type": "user", "subType": "country", "comparator": "=", "values": ["CA"]}],
    }
    assert (
        cli.client.post(
            base, json={"name": "Canada", "key": "canada", "filters": filters}, headers=cli.headers
        ).status_code
        == 201
    )
    r = cli.client.get(base, headers=cli.headers)  # fetchAudiences
    assert r.status_code == 200 and [a["key"] for a in r.json()] == ["canada"]


def test_errors_as_the_cli_reads_them(cli: Cli) -> None:
    r = cli.client.post(f"/v2/projects/{PROJECT}/features", json={"key": "Bad Key", "name": "x"}, headers=cli.headers)
    assert r.status_code == 400
    message = r.json()["message"]  # printed as "DevCycle Error: <message>"
    assert isinstance(message, list) and any(m.startswith("key: ") for m in message)
    r = cli.client.get(f"/v2/projects/{PROJECT}/features", headers={**cli.headers, "Authorization": "not-a-token"})
    assert r.status_code == 401 and r.json()["statusCode"] == 401
