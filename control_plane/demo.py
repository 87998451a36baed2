"""``python -m control_plane demo``: seed a demo organisation through the real admin API.

Everything is created with ordinary API calls (in process), so the demo data passes the same
validation, audit and snapshot publishing as any other change. The SDK keys are shown once by
the API; the demo keeps them in ``<data-dir>/demo.json`` (mode 0600) so that running the demo
again prints the same keys instead of failing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import warnings
from pathlib import Path
from typing import Any

import httpx

from control_plane.app import create_app
from control_plane.settings import Settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

ORG = "demo"
APP = "demo-app"
ENVIRONMENTS = (("development", "development"), ("production", "production"))

FEATURES: list[dict[str, Any]] = [
    {
        "key": "huddle",
        "name": "Huddles",
        "configuration": {
            "targeting": {
                "rules": [
                    {
                        "filter": {
                            "type": "group",
                            "operator": "and",
                            "filters": [
                                {
                                    "type": "context",
                                    "field": "company.plan",
                                    "operator": "ANY_OF",
                                    "values": ["business", "enterprise"],
                                },
                                {
                                    "type": "rolloutPercentage",
                                    "partialRolloutAttribute": "company.id",
                                    "partialRolloutThreshold": 100000,
                                },
                            ],
                        }
                    }
                ]
            },
            "config": {
                "variants": [
                    {
                        "key": "wide",
                        "filter": {
                            "type": "context",
                            "field": "user.email",
                            "operator": "CONTAINS",
                            "values": ["@acme"],
                        },
                        "payload": {"columns": 4},
                    },
                    {"key": "default", "filter": {"type": "constant", "value": True}, "payload": {"columns": 2}},
                ]
            },
        },
    },
    {
        "key": "new-checkout",
        "name": "New checkout",
        "configuration": {
            "targeting": {
                "rules": [
                    {
                        "filter": {
                            "type": "rolloutPercentage",
                            "partialRolloutAttribute": "user.id",
                            "partialRolloutThreshold": 50000,
                        }
                    }
                ]
            }
        },
    },
    {
        "key": "dark-mode",
        "name": "Dark mode (app 2.0+ in DE/AT)",
        "configuration": {
            "targeting": {
                "rules": [
                    {
                        "filter": {
                            "type": "group",
                            "operator": "and",
                            "filters": [
                                {"type": "user", "subType": "country", "comparator": "=", "values": ["DE", "AT"]},
                                {"type": "jsonLogic", "rule": {"sem_ver": [{"var": "user.appVersion"}, ">=", "2.0.0"]}},
                            ],
                        }
                    }
                ]
            }
        },
    },
]


class DemoError(RuntimeError):
    pass


def _ok(response: Any, what: str) -> Any:
    if response.status_code >= 300:
        raise DemoError(f"{what} failed: {response.status_code} {response.text}")
    return response.json() if response.content else None


def seed(client: TestClient | httpx.Client) -> dict[str, Any]:
    """Create the demo through an admin API client (in-process, or a running control plane)."""
    password = secrets.token_urlsafe(12)
    user = _ok(
        client.post(
            "/users/create",
            json={
                "name": "demo",
                "password": password,
                "first_name": "Demo",
                "last_name": "User",
                "email": "demo@example.com",
                "change_reason": "demo seed",
            },
        ),
        "sign-up",
    )
    auth = {"Authorization": f"Bearer {user['user_token']['access_token']}"}
    _ok(client.post("/organisations/create", json={"name": ORG}, headers=auth), "organisation")
    org = {**auth, "x-organisation": ORG}
    _ok(client.post("/organisations/applications/create", json={"application": APP}, headers=org), "application")
    environments: dict[str, Any] = {}
    for key, kind in ENVIRONMENTS:
        env = _ok(
            client.post(
                f"/v1/projects/{APP}/environments", json={"name": key.title(), "key": key, "type": kind}, headers=org
            ),
            f"environment {key}",
        )
        environments[key] = {kind_: keys[0]["key"] for kind_, keys in env["sdkKeys"].items()}
    for feature in FEATURES:
        body = {
            "key": feature["key"],
            "name": feature["name"],
            "configurations": {key: {"status": "active", **feature["configuration"]} for key, _ in ENVIRONMENTS},
        }
        _ok(client.post(f"/v1/projects/{APP}/features", json=body, headers=org), f"feature {feature['key']}")
    widget = _ok(
        client.put(
            f"/projects/{APP}/widget-config",
            json={"settings": {"theme": "light", "position": "bottom-right", "title": "Feedback"}},
            headers=org,
        ),
        "widget",
    )
    _board(client, org)
    app_headers = {**org, "x-application": APP}
    for path in ("index.js", "vendor.js"):
        # The demo's CDN is not reachable: the files carry the size and SHA-256 of their (made up)
        # content, as Airborne's CLI sends them, so the demo release can go live.
        content = f"// demo {path}\n".encode()
        digest = {"size": len(content), "checksum": hashlib.sha256(content).hexdigest()}
        _ok(
            client.post(
                "/file",
                json={"file_path": path, "url": f"https://cdn.example.com/demo/{path}", "tag": "latest", **digest},
                headers=app_headers,
            ),
            f"file {path}",
        )
    _ok(
        client.post("/packages", json={"index": "index.js", "tag": "v1", "files": ["vendor.js"]}, headers=app_headers),
        "package",
    )
    _ok(client.post("/releases", json={}, headers=app_headers), "release")
    return {
        "organisation": ORG,
        "application": APP,
        "project": APP,
        "releaseoProjectKey": widget["projectKey"],
        "environments": environments,
        "login": {"name": "demo", "password": password},
    }


def _board(client: TestClient | httpx.Client, org: dict[str, str]) -> None:
    """Releaseo's public board: a category, two approved requests, a public and a targeted roadmap
    item (``user.plan = pro``) and a published changelog entry."""
    base = f"/projects/{APP}"
    category = _ok(
        client.post(f"{base}/feature-request-categories", json={"name": "Integrations"}, headers=org), "category"
    )
    for title in ("Slack notifications", "Export to CSV"):
        body = {"title": title, "categoryId": category["id"]}
        _ok(client.post(f"{base}/feature-requests", json=body, headers=org), f"feature request {title}")
    pro = {"type": "context", "field": "user.plan", "operator": "IS", "values": ["pro"]}
    items: list[dict[str, Any]] = [
        {"title": "Public API", "status": "in_progress"},
        {"title": "Pro analytics", "visibility": "audience_targeted", "audience": {"mode": "condition", "filter": pro}},
    ]
    for item in items:
        _ok(client.post(f"{base}/roadmap", json=item, headers=org), f"roadmap item {item['title']}")
    entry = {"title": "Dark mode is here", "body": "Switch it on in settings.", "status": "published"}
    _ok(client.post(f"{base}/changelog", json=entry, headers=org), "changelog entry")


def run(data_dir: Path, as_json: bool) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    data_dir.mkdir(parents=True, exist_ok=True)
    saved = data_dir / "demo.json"
    if saved.exists():
        info = json.loads(saved.read_text())
    else:
        from control_plane.settings import load_jwt_secret

        settings = Settings(
            data_dir=data_dir, jwt_secret=load_jwt_secret(data_dir, os.environ.get("FLAGEDGE_JWT_SECRET"))
        )
        with TestClient(create_app(settings)) as client:
            info = seed(client)
        fd = os.open(saved, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(info, f, indent=2)
    if as_json:
        print(json.dumps(info))
        return 0
    print(f"organisation {info['organisation']}, application/project {info['project']}")
    key = info["releaseoProjectKey"]
    print(f"Releaseo project key (GET /sdk/config, /sdk/feature-requests, /sdk/roadmap/snapshot ?key=...): {key}")
    for env, kinds in info["environments"].items():
        for kind, keys in kinds.items():
            print(f"  {env:12} {kind:7} {keys}")
    print(f"admin login: {info['login']['name']} / {info['login']['password']}")
    return 0
