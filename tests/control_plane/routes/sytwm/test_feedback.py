"""POST/GET /api/v1/feedback and its moderation: answers checked per input kind with the
document's error example, client_dedup_id replays (one entry under concurrent copies), pages
newest first that neither skip nor repeat while feedback arrives, step labels of the version
answered, is_hidden."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest

from tests.control_plane.conftest import Api, assert_error
from tests.control_plane.routes.sytwm.support import DEFINITION, Site, answer, bearer, publish, site


def _count(api: Api, org: str) -> int:
    with api.client.app.state.services.store.read() as db:  # type: ignore[attr-defined]
        row = db.execute(
            "SELECT COUNT(*) FROM sytwm_feedback f JOIN organisations o ON o.id = f.organisation_id WHERE o.name = ?",
            (org,),
        ).fetchone()
    return int(row[0])


def test_the_documents_error_example(api: Api) -> None:
    s = site(api)
    r = s.feedback({"post_slug": "default", "answers": [{"step_id": "tried", "answer": "maybe"}]})
    assert r.status_code == 400
    assert r.json() == {
        "error": {
            "code": "validation_failed",
            "message": "Submitted answer did not match the step's input kind.",
            "details": [{"field": "answers.tried", "code": "invalid_choice", "message": "Expected 'yes' or 'no'."}],
            "request_id": r.headers["x-request-id"],
        }
    }
    assert _count(api, s.org) == 0


def test_201_shape_and_normalised_answers(api: Api) -> None:
    s = site(api)
    r = s.feedback(answer("yes", what_tried="the install script", plan="pro", score=5))
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"id", "is_public", "replayed"}
    assert (body["is_public"], body["replayed"]) == (True, False)
    assert isinstance(body["id"], str) and body["id"]
    item = s.list_feedback().json()["items"][0]
    assert item == {
        "id": body["id"],
        "post_slug": "default",
        "is_public": True,
        "is_hidden": False,
        "public_text": "ok",
        "submitter_label": "anon",
        "submitted_at": item["submitted_at"],
        "answers": [
            {"step_id": "tried", "step_label": "Did you try it?", "answer": True},
            {"step_id": "what_tried", "step_label": "What did you try?", "answer": "the install script"},
            {"step_id": "plan", "step_label": "Which plan?", "answer": "pro"},
            {"step_id": "score", "step_label": "How was it?", "answer": 5},
        ],
    }
    assert item["submitted_at"].endswith("Z")
    assert s.feedback(answer(False)).status_code == 201
    assert s.feedback(answer("no")).status_code == 201
    private = s.feedback({"post_slug": "default", "answers": []})
    assert private.status_code == 201 and private.json()["is_public"] is False


@pytest.mark.parametrize(
    ("step", "value", "code", "message"),
    [
        ("tried", 1, "invalid_choice", "Expected 'yes' or 'no'."),
        ("tried", None, "invalid_choice", "Expected 'yes' or 'no'."),
        ("plan", "enterprise", "invalid_choice", "Expected one of 'free', 'pro'."),
        ("plan", ["pro"], "invalid_choice", "Expected one of 'free', 'pro'."),
        ("what_tried", 42, "invalid_type", "Expected text."),
        ("what_tried", "x" * 201, "too_long", "At most 200 characters."),
        ("score", 6, "out_of_range", "Expected a whole number from 1 to 5."),
        ("score", 0, "out_of_range", "Expected a whole number from 1 to 5."),
        ("score", 4.5, "invalid_type", "Expected a whole number from 1 to 5."),
        ("score", True, "invalid_type", "Expected a whole number from 1 to 5."),
        ("score", "5", "invalid_type", "Expected a whole number from 1 to 5."),
    ],
)
def test_each_input_kind_is_checked(api: Api, step: str, value: Any, code: str, message: str) -> None:
    s = site(api)
    body = {"post_slug": "default", "answers": [{"step_id": step, "answer": value}]}
    err = assert_error(s.feedback(body), 400, "validation_failed")["error"]
    assert err["message"] == "Submitted answer did not match the step's input kind."
    assert err["details"] == [{"field": f"answers.{step}", "code": code, "message": message}]


def test_multiple_choice_required_unknown_and_duplicate_steps(api: Api) -> None:
    s = site(api)
    definition = {
        "steps": [
            {"id": "langs", "label": "Languages", "kind": "choice", "options": ["py", "rs", "go"], "multiple": True},
            {"id": "must", "label": "Must", "kind": "yes_no", "required": True},
        ]
    }
    c = api.client
    r = c.post("/admin/posts/default/versions", json={"definition": definition}, headers=s.h)
    assert r.status_code == 201
    publish(api, s.h, "default")
    ok = s.feedback(
        {
            "post_slug": "default",
            "answers": [{"step_id": "langs", "answer": ["py", "rs"]}, {"step_id": "must", "answer": True}],
        }
    )
    assert ok.status_code == 201, ok.text
    bad = s.feedback(
        {
            "post_slug": "default",
            "answers": [
                {"step_id": "langs", "answer": ["py", "py"]},
                {"step_id": "ghost", "answer": 1},
                {"step_id": "langs", "answer": ["go"]},
            ],
        }
    )
    details = assert_error(bad, 400, "validation_failed")["error"]["details"]
    assert [(d["field"], d["code"]) for d in details] == [
        ("answers.langs", "invalid_choice"),
        ("answers.ghost", "unknown_step"),
        ("answers.langs", "duplicate_step"),
        ("answers.must", "required"),
    ]
    missing = s.feedback({"post_slug": "default", "answers": [{"step_id": "langs", "answer": ["go"]}]})
    err = assert_error(missing, 400, "validation_failed")["error"]
    assert err["details"] == [{"field": "answers.must", "code": "required", "message": "This step needs an answer."}]


def test_bad_bodies_and_unpublished_posts(api: Api) -> None:
    s = site(api)
    c = api.client
    assert_error(s.feedback({**answer(), "post_slug": "nope"}), 404, "not_found")
    c.post("/admin/posts/default/unpublish", json={}, headers=s.h)
    assert_error(s.feedback(answer()), 404, "not_found")
    publish(api, s.h, "default")
    for body, field in (
        ({**answer(), "is_public": "true"}, "is_public"),
        ({**answer(), "extra": 1}, "extra"),
        ({"answers": []}, "post_slug"),
        ({**answer(), "public_text": "x" * 2001}, "public_text"),
        ({**answer(), "client_dedup_id": ""}, "client_dedup_id"),
        ({**answer(), "answers": [{"step_id": "tried"}]}, "answers.0.answer"),
    ):
        err = assert_error(s.feedback(body), 400, "validation_failed")["error"]
        assert field in [d["field"] for d in err["details"]], (body, err)
    r = c.post(
        "/api/v1/feedback", content=b"{not json", headers={**bearer(s.submit), "content-type": "application/json"}
    )
    assert_error(r, 400, "validation_failed")
    r = c.post("/api/v1/feedback", content=b"x" * (300 << 10), headers=bearer(s.submit))
    assert_error(r, 413, "payload_too_large")
    assert _count(api, s.org) == 0


def test_client_dedup_id_replays_per_key(api: Api) -> None:
    s = site(api)
    first = s.feedback({**answer(), "client_dedup_id": "form-1"})
    again = s.feedback({**answer(False), "client_dedup_id": "form-1"})  # a retry: the stored entry answers
    assert first.status_code == again.status_code == 201
    assert again.json() == {**first.json(), "replayed": True}
    other_key = s.key("submit")
    other = s.feedback({**answer(), "client_dedup_id": "form-1"}, key=other_key)
    assert other.json()["replayed"] is False and other.json()["id"] != first.json()["id"]
    assert s.feedback(answer()).json()["replayed"] is False
    assert s.feedback(answer()).json()["replayed"] is False  # no dedup id: every submission is new
    assert _count(api, s.org) == 4
    # A retry still finds its entry after the post was unpublished.
    api.client.post("/admin/posts/default/unpublish", json={}, headers=s.h)
    assert s.feedback({**answer(), "client_dedup_id": "form-1"}).json() == {**first.json(), "replayed": True}


def test_ten_concurrent_identical_submissions_make_one_entry(api: Api) -> None:
    s = site(api)
    body = {**answer(), "client_dedup_id": "retry-storm"}

    async def storm() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=api.client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return list(
                await asyncio.gather(
                    *(client.post("/api/v1/feedback", json=body, headers=bearer(s.submit)) for _ in range(10))
                )
            )

    answers = asyncio.run(storm())
    assert [r.status_code for r in answers] == [201] * 10
    assert len({r.json()["id"] for r in answers}) == 1
    assert sorted(r.json()["replayed"] for r in answers) == [False] + [True] * 9
    assert _count(api, s.org) == 1


def _all_pages(s: Site, limit: int, between: Any = None) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        r = s.list_feedback(**params)
        assert r.status_code == 200, r.text
        pages.append([i["id"] for i in r.json()["items"]])
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return pages
        assert isinstance(cursor, str)
        if between is not None:
            between()


def test_pages_newest_first_with_next_cursor_null_at_the_end(api: Api) -> None:
    s = site(api)
    ids = [s.feedback(answer()).json()["id"] for _ in range(7)]
    pages = _all_pages(s, 3)
    assert pages == [ids[::-1][:3], ids[::-1][3:6], ids[::-1][6:]]
    assert _all_pages(s, 7) == [ids[::-1]]
    empty = site(api)
    assert empty.list_feedback().json() == {"items": [], "next_cursor": None}


def test_pages_neither_skip_nor_repeat_while_feedback_arrives(api: Api) -> None:
    s = site(api)
    before = [s.feedback(answer()).json()["id"] for _ in range(25)]
    arrived: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            r = s.feedback(answer())
            assert r.status_code == 201
            arrived.append(r.json()["id"])

    def burst() -> None:
        for _ in range(3):
            arrived.append(s.feedback(answer()).json()["id"])

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        # Also a burst of new entries between every two pages, on top of the concurrent writer.
        pages = _all_pages(s, 4, burst)
    finally:
        stop.set()
        thread.join()
    seen = [i for p in pages for i in p]
    assert len(seen) == len(set(seen)), "an entry was repeated"
    assert arrived, "nothing arrived while paging"
    first_page_new = [i for i in pages[0] if i not in before]
    # The first page may include entries that arrived before it was read; after it, nothing new.
    assert [i for i in seen if i not in before] == first_page_new
    assert set(seen) - set(first_page_new) == set(before), "an entry was skipped"
    assert seen[len(first_page_new) :] == before[::-1][: len(seen) - len(first_page_new)]


def test_bad_cursors_are_refused(api: Api) -> None:
    s = site(api)
    for _ in range(3):
        s.feedback(answer())
    tele = api.client
    for _ in range(3):
        tele.post("/api/v1/telemetry", json={"event_type": "hit"}, headers=bearer(s.submit))
    telemetry_cursor = tele.get("/api/v1/telemetry", params={"limit": 1}, headers=bearer(s.read)).json()["next_cursor"]
    for cursor in ("garbage", "ZmVlZGJhY2s6eA", telemetry_cursor, "x" * 201):
        err = assert_error(s.list_feedback(cursor=cursor), 400, "validation_failed")["error"]
        assert err["details"][0]["field"] == "query.cursor"
    for limit in (0, 101, "many"):
        assert_error(s.list_feedback(limit=limit), 400, "validation_failed")


def test_step_labels_come_from_the_version_answered(api: Api) -> None:
    s = site(api)
    old = s.feedback(answer()).json()["id"]
    relabelled = {"steps": [{**DEFINITION["steps"][0], "label": "Have you tried it yet?"}, *DEFINITION["steps"][1:]]}
    api.client.post("/admin/posts/default/versions", json={"definition": relabelled}, headers=s.h)
    publish(api, s.h, "default")
    new = s.feedback(answer()).json()["id"]
    labels = {i["id"]: i["answers"][0]["step_label"] for i in s.list_feedback().json()["items"]}
    assert labels == {old: "Did you try it?", new: "Have you tried it yet?"}


def test_hide_and_unhide(api: Api) -> None:
    s = site(api)
    c = api.client
    entry = s.feedback(answer()).json()["id"]
    r = c.post(f"/admin/feedback/{entry}/hide", json={"change_reason": "spam"}, headers=s.h)
    assert r.status_code == 200 and r.json() == {"id": entry, "is_hidden": True}
    assert s.list_feedback().json()["items"][0]["is_hidden"] is True
    assert c.post(f"/admin/feedback/{entry}/unhide", json={}, headers=s.h).json()["is_hidden"] is False
    assert s.list_feedback().json()["items"][0]["is_hidden"] is False
    reader = api.signup()
    api.member(s.owner, s.org, reader, "read")
    assert_error(
        c.post(f"/admin/feedback/{entry}/hide", json={}, headers={**reader.auth, "x-organisation": s.org}),
        403,
        "forbidden",
    )
    other = site(api)
    assert_error(c.post(f"/admin/feedback/{entry}/hide", json={}, headers=other.h), 404, "not_found")
    assert_error(c.post("/admin/feedback/nope/hide", json={}, headers=s.h), 404, "not_found")
    assert other.list_feedback().json()["items"] == []  # a read key sees its own organisation only


def test_the_dashboard_inbox_lists_what_the_read_key_lists_for_signed_in_members(api: Api) -> None:
    s = site(api)
    first = s.feedback(answer("yes", plan="pro")).json()["id"]
    second = s.feedback(answer("no", plan="free")).json()["id"]
    c = api.client
    assert c.post(f"/admin/feedback/{first}/hide", json={}, headers=s.h).status_code == 200
    inbox = c.get("/admin/feedback", headers=s.h)
    assert inbox.status_code == 200, inbox.text
    assert inbox.json() == s.list_feedback().json()
    assert [(i["id"], i["is_hidden"]) for i in inbox.json()["items"]] == [(second, False), (first, True)]
    # Pages like the key API's, newest first.
    one = c.get("/admin/feedback", params={"limit": 1}, headers=s.h).json()
    assert [i["id"] for i in one["items"]] == [second] and one["next_cursor"]
    rest = c.get("/admin/feedback", params={"limit": 1, "cursor": one["next_cursor"]}, headers=s.h).json()
    assert [i["id"] for i in rest["items"]] == [first]
    # A read member may look; an API key (of any kind) and another organisation may not.
    reader = api.signup()
    api.member(s.owner, s.org, reader, "read")
    assert c.get("/admin/feedback", headers={**reader.auth, "x-organisation": s.org}).status_code == 200
    assert_error(c.get("/admin/feedback", headers={**bearer(s.read), "x-organisation": s.org}), 403, "forbidden")
    other = site(api)
    assert_error(c.get("/admin/feedback", headers={**other.owner.auth, "x-organisation": s.org}), 404, "not_found")
