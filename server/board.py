"""A project's Releaseo board as one edge worker holds it: the ``boards`` value of the snapshot
(``contract/store.py``), indexed, with its audiences compiled by the evaluator the flags use.

The control plane already left out everything no one may see (pending or rejected requests,
internal roadmap items, draft changelog entries; ``control_plane/board_snapshot.py``). What is
left to decide per request is who sees an ``audience: "targeted"`` item or entry: an identified
user (a ``userId``) whose context the item's audience (a saved segment's snapshot or a custom
condition, compiled as a flag) enables. An anonymous reader never sees one; a board whose
audiences do not compile is reported not ready and shows no targeted item (fail closed).

Built once per stamped version (:func:`build_board`), in the thread that builds the view.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

import evaluator
from contract.store import audience_key

Pairs = list[tuple[str, str]]
#: ``GET /sdk/feature-requests`` without parameters: sort, categoryId, status, limit, offset.
DEFAULT_LIMIT = 50
DEFAULT_PAGE = ("top", None, None, DEFAULT_LIMIT, 0)


@dataclass(frozen=True)
class Board:
    project: str
    key: str
    version: int
    categories: tuple[dict[str, Any], ...]
    category_ids: frozenset[str]
    requests: tuple[dict[str, Any], ...]
    request_index: dict[str, dict[str, Any]]
    comments: dict[str, list[dict[str, Any]]]
    roadmap: tuple[dict[str, Any], ...]
    roadmap_index: dict[str, dict[str, Any]]
    changelog: tuple[dict[str, Any], ...]
    audiences: evaluator.Snapshot | None
    # The roadmap snapshot of a reader no targeted item is shown to (the common, anonymous case).
    public_snapshot: bytes
    # The feature-request list a widget opens on (DEFAULT_PAGE), built once per version.
    first_page: bytes

    def request_page(self, sort: str, category: str | None, status: str | None, limit: int, offset: int) -> bytes:
        """A page of approved requests: ``top`` (most votes first, newest first among equals) or
        ``new``, optionally of one category or status."""
        if (sort, category, status, limit, offset) == DEFAULT_PAGE:
            return self.first_page
        return _request_page(self.requests, self.version, sort, category, status, limit, offset)

    def enabled(self, user_id: str | None, pairs: Pairs) -> frozenset[str]:
        """Audience keys enabled for this user (none for an anonymous reader)."""
        if user_id is None or self.audiences is None or len(self.audiences) == 0:
            return frozenset()
        context = [*(p for p in pairs if p[0] != "user.id"), ("user.id", user_id)]
        enabled = orjson.loads(self.audiences.evaluate_all_flat(context, enabled_only=True))
        return frozenset(enabled)

    def enabled_for(self, user_id: str, context: dict[str, Any]) -> frozenset[str]:
        """Audience keys enabled for this user with a nested context (``{"user": {"plan": ...}}``)."""
        if self.audiences is None or len(self.audiences) == 0:
            return frozenset()
        user = context.get("user")
        full = {**context, "user": {**(user if isinstance(user, dict) else {}), "id": user_id}}
        return frozenset(orjson.loads(self.audiences.evaluate_all(full, enabled_only=True)))

    def visible_roadmap(self, enabled: frozenset[str]) -> list[dict[str, Any]]:
        return [i for i in self.roadmap if _shown(i, "roadmap", enabled)]

    def visible_changelog(self, enabled: frozenset[str]) -> list[dict[str, Any]]:
        return [e for e in self.changelog if _shown(e, "changelog", enabled)]

    def roadmap_item(self, item_id: str, enabled: frozenset[str]) -> dict[str, Any] | None:
        item = self.roadmap_index.get(item_id)
        return item if item is not None and _shown(item, "roadmap", enabled) else None

    def snapshot_body(self, enabled: frozenset[str]) -> bytes:
        if not enabled:
            return self.public_snapshot
        return _snapshot_body(self.version, self.visible_roadmap(enabled), self.visible_changelog(enabled))


def _request_page(
    requests: Iterable[dict[str, Any]],
    version: int,
    sort: str,
    category: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> bytes:
    items = [
        r
        for r in requests  # newest first, as published
        if (category is None or r.get("categoryId") == category) and (status is None or r.get("status") == status)
    ]
    if sort == "top":
        items.sort(key=lambda r: -int(r.get("voteCount", 0)))  # stable: newest first among equals
    more = offset + limit < len(items)
    page = items[offset : offset + limit]
    next_cursor = f"o{offset + limit}" if more else None
    return orjson.dumps({"items": page, "total": len(items), "nextCursor": next_cursor, "version": version})


def _shown(item: dict[str, Any], kind: str, enabled: frozenset[str]) -> bool:
    return item.get("audience") != "targeted" or audience_key(kind, str(item["id"])) in enabled


def _snapshot_body(version: int, roadmap: Iterable[dict[str, Any]], changelog: Iterable[dict[str, Any]]) -> bytes:
    return orjson.dumps({"items": list(roadmap), "changelog": list(changelog), "version": version})


def _list(value: dict[str, Any], name: str) -> tuple[dict[str, Any], ...]:
    items = value.get(name, [])
    if not isinstance(items, list) or not all(isinstance(i, dict) and isinstance(i.get("id"), str) for i in items):
        raise ValueError(f"{name} is not a list of objects with ids")
    return tuple(items)


def build_board(key: str, value: dict[str, Any]) -> tuple[Board, str | None]:
    """The board of a decoded ``boards`` value, and why its audiences failed to compile (if so):
    the board is still served, without targeted items. ValueError/KeyError/TypeError for a value
    that is not a board at all."""
    version = int(value["version"])
    categories, requests = _list(value, "categories"), _list(value, "requests")
    roadmap, changelog = _list(value, "roadmap"), _list(value, "changelog")
    comments = value.get("comments", {})
    if not isinstance(comments, dict):
        raise ValueError("comments is not an object")
    problem = None
    try:
        audiences: evaluator.Snapshot | None = evaluator.Snapshot(orjson.dumps(value.get("audiences") or {}))
    except evaluator.EvaluatorError as e:
        audiences, problem = None, f"audiences do not compile: {e}"
    public = [i for i in roadmap if i.get("audience") != "targeted"]
    board = Board(
        project=str(value.get("project", "")),
        key=key,
        version=version,
        categories=categories,
        category_ids=frozenset(str(c["id"]) for c in categories),
        requests=requests,
        request_index={str(r["id"]): r for r in requests},
        comments={str(k): v for k, v in comments.items() if isinstance(v, list)},
        roadmap=roadmap,
        roadmap_index={str(i["id"]): i for i in roadmap},
        changelog=changelog,
        audiences=audiences,
        public_snapshot=_snapshot_body(version, public, (e for e in changelog if e.get("audience") != "targeted")),
        first_page=_request_page(requests, version, *DEFAULT_PAGE),
    )
    return board, problem
