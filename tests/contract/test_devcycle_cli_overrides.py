"""The DevCycle CLI's self-targeting requests (``dvc identity`` and ``dvc overrides``), replayed
exactly as its source sends them (DevCycleHQ/cli v6.2.2: ``src/api/userProfile.ts``,
``src/api/overrides.ts``, ``src/commands/overrides/*.ts``): its headers (``buildHeaders``: a bare
``Authorization: <token>``, no ``x-organisation``), paths, query strings and bodies, and what each
command then reads from the answer. Errors are read as the CLI's axios interceptor does
(``response.data.message``)."""

from __future__ import annotations

from typing import Any

from tests.control_plane.conftest import Api
from tests.control_plane.devcycle_support import BOOL_FEATURE, project

BASE = "/v1/projects/app"


def test_identity_and_overrides_commands(api: Api) -> None:
    p = project(api)
    p.environment("production", "production")
    p.feature(BOOL_FEATURE)
    # buildHeaders(token) plus the referrer headers setDVCReferrer adds to every request.
    cli = {
        "Content-Type": "application/json",
        "Authorization": p.owner.token,
        "dvc-referrer": "cli",
        "dvc-referrer-metadata": '{"command":"overrides","version":"6.2.2","caller":"cli"}',
    }
    c = api.client

    def call(method: str, path: str, body: Any = None, **query: str) -> Any:
        kwargs: dict[str, Any] = {"headers": cli, "params": query}
        if body is not None:
            kwargs["json"] = body
        return c.request(method, BASE + path, **kwargs)

    # dvc identity get / update: fetchUserProfile, then updateUserProfile(token, project, {dvcUserId}).
    r = call("GET", "/userProfile/current")
    assert r.status_code == 200 and r.json()["dvcUserId"] is None, r.text
    r = call("PATCH", "/userProfile/current", {"dvcUserId": "cli-user"})
    assert r.status_code == 200 and r.json()["dvcUserId"] == "cli-user", r.text

    # dvc overrides update --feature new-dash --environment production --variation off: the body
    # is UpdateUserOverrideDto.parse({feature, environment, variation}) = {environment, variation}.
    r = call("PUT", "/features/new-dash/overrides/current", {"environment": "production", "variation": "off"})
    assert r.status_code == 200, r.text
    override = r.json()
    assert {"_project", "_environment", "_feature", "_variation", "dvcUserId", "createdAt", "updatedAt"} <= set(
        override
    )
    assert override["dvcUserId"] == "cli-user"

    # dvc overrides get: fetchFeatureOverridesForUser(..., environment key), fetchEnvironmentByKey,
    # overrides.overrides.find(o => o._environment === environment._id), fetchVariationByKey(o._variation).
    r = call("GET", "/features/new-dash/overrides/current", environment="production")
    assert r.status_code == 200, r.text
    env = call("GET", "/environments/production").json()
    found = [o for o in r.json()["overrides"] if o["_environment"] == env["_id"]]
    assert len(found) == 1
    variation = call("GET", f"/features/new-dash/variations/{found[0]['_variation']}")
    assert variation.status_code == 200 and variation.json()["key"] == "off", variation.text

    # dvc overrides list: fetchProjectOverridesForUser, printed by name.
    r = call("GET", "/overrides/current")
    assert r.status_code == 200, r.text
    assert [(o["featureName"], o["environmentName"], o["variationName"]) for o in r.json()] == [
        ("New dashboard", "Production", "Off")
    ]

    # dvc overrides clear --feature new-dash --environment <id>: deleteFeatureOverrides (no body).
    r = call("DELETE", "/features/new-dash/overrides/current", environment=env["_id"])
    assert r.status_code == 204, r.text
    assert call("GET", "/features/new-dash/overrides/current").json() == {"overrides": []}
    # dvc overrides clear --all: fetchProjectOverridesForUser, then deleteAllProjectOverrides.
    assert call(
        "PUT", "/features/new-dash/overrides/current", {"environment": "production", "variation": "on"}
    ).is_success
    assert len(call("GET", "/overrides/current").json()) == 1
    assert call("DELETE", "/overrides/current").status_code == 204
    assert call("GET", "/overrides/current").json() == []

    # Errors as the CLI reports them: "DevCycle Error:" + response.data.message.
    r = call("PUT", "/features/new-dash/overrides/current", {"environment": "production", "variation": "nope"})
    assert r.status_code == 400 and r.json()["message"] and r.json()["statusCode"] == 400, r.text
    r = call("GET", "/features/nope/overrides/current")
    assert r.status_code == 404 and isinstance(r.json()["message"], str), r.text
    # A token that is not one is the CLI's 401 ("please login using dvc login again").
    assert c.get(BASE + "/overrides/current", headers={**cli, "Authorization": "not-a-token"}).status_code == 401
