"""What the edge serves on Releaseo's public board and roadmap routes: one ``boards`` value per
project, keyed by its public project key (``contract/store.py``).

The visibility rules of seed 000 are applied here, once per publish, so that nothing the edge
holds may not be shown to someone:

* feature requests: only ``kind = feature_request`` with ``reviewStatus = approved`` (pending and
  rejected submissions never leave the control plane), with their comments;
* roadmap items: ``internal_only`` items are left out; ``audience_targeted`` items go in marked
  ``"audience": "targeted"`` with their audience compiled into ``audiences`` (the evaluator
  document the flags use), which the edge evaluates per identified user;
* changelog entries: only published ones; an entry targeted at a saved segment or a custom
  condition carries the audience stored with it (a segment's snapshot, not its current draft).

End users are named by the ``authorName`` they chose, never by their user id.
"""

from __future__ import annotations

from typing import Any

import orjson

from contract.store import audience_key
from control_plane.dialect import Connection
from control_plane.widget_snapshot import widget_project_key

# Newest comments published per request: a busy thread's older comments stay in the dashboard.
MAX_PUBLIC_COMMENTS = 200


def _audience(kind: str, item_id: str, stored: str | None, doc: list[dict[str, Any]]) -> str:
    """``"targeted"`` after adding the stored audience's filter to the evaluator document."""
    audience = orjson.loads(stored) if stored else None
    if not isinstance(audience, dict) or not isinstance(audience.get("definition"), dict):
        # A targeted item without an audience is shown to nobody (fail closed).
        definition: dict[str, Any] = {"type": "constant", "value": False}
    else:
        definition = audience["definition"]
    doc.append({"key": audience_key(kind, item_id), "targeting": {"version": 1, "rules": [{"filter": definition}]}})
    return "targeted"


def _requests(db: Connection, project_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    requests = [
        {
            "id": r["id"],
            "title": r["title"],
            "description": r["description"],
            "categoryId": r["category_id"],
            "status": r["status"],
            "authorName": r["author_name"],
            "voteCount": r["vote_count"],
            "commentCount": r["comment_count"],
            "createdAt": r["created_at"],
            "updatedAt": r["updated_at"],
        }
        for r in db.execute(
            "SELECT * FROM releaseo_feature_requests WHERE project_id = ? AND kind = 'feature_request'"
            " AND review_status = 'approved' ORDER BY seq DESC",
            (project_id,),
        )
    ]
    # One query for every public thread's newest comments (not one per request: a publish of a
    # busy board would otherwise cost a query per request).
    comments: dict[str, Any] = {r["id"]: [] for r in requests}
    for c in db.execute(
        "SELECT * FROM (SELECT c.id, c.request_id, c.author_name, c.body, c.created_at, c.seq,"
        " ROW_NUMBER() OVER (PARTITION BY c.request_id ORDER BY c.seq DESC) AS newest"
        " FROM releaseo_comments c JOIN releaseo_feature_requests r ON r.id = c.request_id"
        " WHERE r.project_id = ? AND r.kind = 'feature_request' AND r.review_status = 'approved') ranked"
        " WHERE newest <= ? ORDER BY seq",
        (project_id, MAX_PUBLIC_COMMENTS),
    ):
        comments[c["request_id"]].append(
            {"id": c["id"], "authorName": c["author_name"], "body": c["body"], "createdAt": c["created_at"]}
        )
    return requests, comments


def board_snapshot(db: Connection, project_id: str) -> dict[str, Any] | None:
    """The project's ``boards`` value, or None while it has no public project key."""
    project_key = widget_project_key(db, project_id)
    if project_key is None:
        return None
    audiences: list[dict[str, Any]] = []
    categories = [
        {"id": r["id"], "name": r["name"], "description": r["description"], "position": r["position"]}
        for r in db.execute(
            "SELECT * FROM releaseo_categories WHERE project_id = ? ORDER BY position, seq", (project_id,)
        )
    ]
    requests, comments = _requests(db, project_id)
    roadmap = []
    for r in db.execute(
        "SELECT i.*, (SELECT COUNT(*) FROM releaseo_roadmap_follows f WHERE f.item_id = i.id AND f.following = 1)"
        " AS followers FROM releaseo_roadmap_items i"
        " WHERE i.project_id = ? AND i.visibility != 'internal_only' ORDER BY i.position, i.seq",
        (project_id,),
    ):
        targeted = r["visibility"] == "audience_targeted"
        roadmap.append(
            {
                "id": r["id"],
                "title": r["title"],
                "description": r["description"],
                "status": r["status"],
                "position": r["position"],
                "featureRequestId": r["feature_request_id"],
                "followerCount": r["followers"],
                "updatedAt": r["updated_at"],
                "audience": _audience("roadmap", r["id"], r["audience"], audiences) if targeted else "all",
            }
        )
    changelog = [
        {
            "id": r["id"],
            "title": r["title"],
            "body": r["body"],
            "publishedAt": r["published_at"],
            "audience": _audience("changelog", r["id"], r["audience"], audiences) if r["audience"] else "all",
        }
        for r in db.execute(
            "SELECT * FROM releaseo_changelog_entries WHERE project_id = ? AND status = 'published'"
            " ORDER BY published_at DESC, seq DESC",
            (project_id,),
        )
    ]
    return {
        "projectKey": project_key,
        "categories": categories,
        "requests": requests,
        "comments": comments,
        "roadmap": roadmap,
        "changelog": changelog,
        "audiences": {"features": audiences},
    }
