"""Contract tests of the Airborne application config route."""

from __future__ import annotations

from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.routes.airborne.support import CONFIG, fields, ok, release_app


def test_config_create(api: Api) -> None:
    app = release_app(api)
    r = api.client.post(
        CONFIG,
        json={
            "config": {"version": "1.0.0", "boot_timeout": 3000},
            "properties": {"theme": "dark"},
            "tenant_info": {"tenant": "t1"},
        },
        headers=app.h,
    )
    body = ok(r)
    assert body["success"] is True and isinstance(body["config_id"], str)
    assert body["version"] == 1 and body["config_version"] == "1.0.0"
    assert ok(api.client.post(CONFIG, json={"config": {"version": "1.1.0"}}, headers=app.h))["version"] == 2
    assert fields(api.client.post(CONFIG, json={"config": {}}, headers=app.h)) == ["config.version"]
    assert fields(api.client.post(CONFIG, json={}, headers=app.h)) == ["config"]
    assert_error(
        api.client.post(CONFIG, json={"config": {"version": "1", "boot_timeout": -1}}, headers=app.h),
        400,
        "validation_failed",
    )
