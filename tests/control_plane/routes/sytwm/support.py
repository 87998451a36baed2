"""Helpers shared by the shareyourthoughtswith.me route tests: an organisation with its owner, its
/api/v1 keys and a published post."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from tests.control_plane.conftest import Api, User

_n = itertools.count()

DEFINITION: dict[str, Any] = {
    "steps": [
        {"id": "tried", "label": "Did you try it?", "kind": "yes_no"},
        {"id": "what_tried", "label": "What did you try?", "kind": "text", "max_length": 200},
        {"id": "plan", "label": "Which plan?", "kind": "choice", "options": ["free", "pro"]},
        {"id": "score", "label": "How was it?", "kind": "rating"},
    ]
}


@dataclass
class Site:
    """An organisation with a submit and a read key, and the ``default`` post published."""

    api: Api
    owner: User
    org: str
    submit: str
    read: str

    @property
    def h(self) -> dict[str, str]:
        """The owner's dashboard headers."""
        return {**self.owner.auth, "x-organisation": self.org}

    def key(self, scope: str) -> str:
        return str(create_key(self.api, self.owner, self.org, scope)["key"])

    def feedback(self, body: dict[str, Any], key: str | None = None) -> Any:
        return self.api.client.post("/api/v1/feedback", json=body, headers=bearer(key or self.submit))

    def list_feedback(self, key: str | None = None, **params: Any) -> Any:
        return self.api.client.get("/api/v1/feedback", params=params, headers=bearer(key or self.read))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def create_key(api: Api, owner: User, org: str, scope: str) -> dict[str, Any]:
    r = api.client.post(
        "/admin/api-keys",
        json={"name": f"k{next(_n)}", "scope": scope},
        headers={**owner.auth, "x-organisation": org},
    )
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


def create_post(api: Api, headers: dict[str, str], slug: str, definition: Any = None, title: str = "Quick") -> Any:
    return api.client.post(
        "/admin/posts", json={"slug": slug, "title": title, "definition": definition or DEFINITION}, headers=headers
    )


def publish(api: Api, headers: dict[str, str], slug: str, version: int | None = None) -> Any:
    body = {} if version is None else {"version": version}
    r = api.client.post(f"/admin/posts/{slug}/publish", json=body, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def site(api: Api, org: str | None = None) -> Site:
    owner = api.signup()
    org = org or f"site{next(_n)}"
    api.organisation(owner, org)
    h = {**owner.auth, "x-organisation": org}
    assert create_post(api, h, "default", title="Quick feedback").status_code == 201
    publish(api, h, "default")
    return Site(
        api, owner, org, create_key(api, owner, org, "submit")["key"], create_key(api, owner, org, "read")["key"]
    )


def answer(tried: Any = True, **more: Any) -> dict[str, Any]:
    """A valid feedback body for the ``default`` post (``tried`` and any other step answers)."""
    answers = [{"step_id": "tried", "answer": tried}, *({"step_id": k, "answer": v} for k, v in more.items())]
    return {
        "post_slug": "default",
        "answers": answers,
        "is_public": True,
        "public_text": "ok",
        "submitter_label": "anon",
    }
