"""Published segment versions: every one stays readable, also after the segment is deleted, and a
publish of an unchanged draft mints none (issue 16's segment-version fixes)."""

from __future__ import annotations

from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.routes.releaseo.support import PRO, SEGMENTS, member, segment_id, setup

BETA = {"type": "context", "field": "user.beta", "operator": "IS_TRUE", "values": []}


def test_every_version_stays_readable_and_outlives_the_segment(api: Api) -> None:
    owner = setup(api)
    sid = segment_id(api, owner, "pro")
    url = f"{SEGMENTS.format('app')}/{sid}"
    assert api.client.get(f"{url}/versions", headers=owner.auth).json() == {"items": [], "segmentDeleted": False}
    v1 = api.client.post(f"{url}/publish", headers=owner.auth).json()["published"]
    api.client.patch(url, json={"definition": BETA}, headers=owner.auth)
    v2 = api.client.post(f"{url}/publish", headers=owner.auth).json()["published"]
    assert (v1["version"], v2["version"]) == (1, 2)

    r = api.client.get(f"{url}/versions/1", headers=owner.auth)
    assert r.status_code == 200, r.text
    assert r.json()["definition"] == PRO and r.json()["segmentId"] == sid
    assert api.client.get(f"{url}/versions/2", headers=owner.auth).json()["definition"] == BETA
    listed = api.client.get(f"{url}/versions", headers=owner.auth).json()
    assert [v["version"] for v in listed["items"]] == [2, 1]

    reader = member(api, owner, "read")
    assert api.client.get(f"{url}/versions/1", headers=reader.auth).status_code == 200

    assert api.client.delete(url, headers=owner.auth).status_code == 200
    assert_error(api.client.get(url, headers=owner.auth), 404, "not_found")
    r = api.client.get(f"{url}/versions/1", headers=owner.auth)
    assert r.status_code == 200 and r.json()["definition"] == PRO
    listed = api.client.get(f"{url}/versions", headers=owner.auth).json()
    assert listed["segmentDeleted"] is True and len(listed["items"]) == 2


def test_missing_versions_and_other_projects_are_404(api: Api) -> None:
    owner = setup(api)
    sid = segment_id(api, owner, "pro")
    url = f"{SEGMENTS.format('app')}/{sid}"
    assert_error(api.client.get(f"{url}/versions/1", headers=owner.auth), 404, "not_found")
    assert_error(api.client.get(f"{url}/versions/x", headers=owner.auth), 400, "validation_failed")
    assert_error(api.client.get(f"{SEGMENTS.format('app')}/nope/versions", headers=owner.auth), 404, "not_found")
    api.client.post(f"{url}/publish", headers=owner.auth)
    stranger = api.signup()
    api.organisation(stranger, "globex")
    assert_error(api.client.get(f"{url}/versions/1", headers=stranger.auth), 404, "not_found")


def test_unchanged_draft_publishes_no_new_version(api: Api) -> None:
    owner = setup(api)
    sid = segment_id(api, owner, "pro")
    url = f"{SEGMENTS.format('app')}/{sid}"
    first = api.client.post(f"{url}/publish", headers=owner.auth).json()
    again = api.client.post(f"{url}/publish", headers=owner.auth).json()
    assert first["unchanged"] is False and again["unchanged"] is True
    assert again["published"] == first["published"]
    api.client.patch(url, json={"name": "renamed"}, headers=owner.auth)
    api.client.patch(url, json={"name": "pro"}, headers=owner.auth)  # back to what is published
    assert api.client.post(f"{url}/publish", headers=owner.auth).json()["unchanged"] is True
    versions = api.client.get(f"{url}/versions", headers=owner.auth).json()["items"]
    assert [v["version"] for v in versions] == [1]
