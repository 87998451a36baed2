"""``control_plane/board_snapshot.py``: what a project's public board holds, and what it never
holds (pending or rejected requests, other kinds, internal roadmap items, drafts)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from contract.store import audience_key
from control_plane.board_snapshot import MAX_PUBLIC_COMMENTS, board_snapshot
from control_plane.dialect import Connection
from control_plane.store import Store

PRO = {"type": "context", "field": "user.plan", "operator": "IS", "values": ["pro"]}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "cp.sqlite3")
    with s.transaction() as db:
        db.execute("INSERT INTO users (id, name, email, password_hash, created_at) VALUES ('u', 'u', 'u@x', '-', 'x')")
        db.execute("INSERT INTO organisations (id, name, created_by, created_at) VALUES ('o1', 'acme', 'u', 'x')")
        db.execute(
            "INSERT INTO projects (id, organisation_id, key, name, created_at, updated_at)"
            " VALUES ('p1', 'o1', 'app', 'App', 'x', 'x')"
        )
    yield s
    s.close()


def _request(db: Connection, request_id: str, review: str, kind: str) -> None:
    db.execute(
        "INSERT INTO releaseo_feature_requests (id, project_id, kind, review_status, title, source, created_at,"
        " updated_at) VALUES (?, 'p1', ?, ?, ?, 'sdk', 'x', 'x')",
        (request_id, kind, review, request_id),
    )


def test_no_project_key_no_board(store: Store) -> None:
    with store.read() as db:
        assert board_snapshot(db, "p1") is None


def test_only_what_may_be_public(store: Store) -> None:
    with store.transaction() as db:
        db.execute(
            "INSERT INTO releaseo_widgets (project_id, project_key, settings, version, created_at, updated_at)"
            " VALUES ('p1', 'rp_x', NULL, 0, 'x', 'x')"
        )
        for request_id, review, kind in (
            ("ok", "approved", "feature_request"),
            ("pending", "pending", "feature_request"),
            ("rejected", "rejected", "feature_request"),
            ("bug", "approved", "bug"),
        ):
            _request(db, request_id, review, kind)
        for i in range(MAX_PUBLIC_COMMENTS + 5):
            for request_id in ("ok", "pending"):
                db.execute(
                    "INSERT INTO releaseo_comments (id, request_id, user_id, author_name, body, source, created_at)"
                    " VALUES (?, ?, 'secret-user', 'Ana', ?, 'sdk', 'x')",
                    (f"{request_id}-{i}", request_id, f"c{i}"),
                )
        for item_id, visibility, audience in (
            ("pub", "public", None),
            ("int", "internal_only", None),
            ("tgt", "audience_targeted", orjson.dumps({"mode": "condition", "definition": PRO}).decode()),
        ):
            db.execute(
                "INSERT INTO releaseo_roadmap_items (id, project_id, title, visibility, audience, created_at,"
                " updated_at) VALUES (?, 'p1', ?, ?, ?, 'x', 'x')",
                (item_id, item_id, visibility, audience),
            )
        db.execute(
            "INSERT INTO releaseo_changelog_entries (id, project_id, title, status, created_at, updated_at)"
            " VALUES ('draft', 'p1', 'd', 'draft', 'x', 'x')"
        )
    with store.read() as db:
        board = board_snapshot(db, "p1")
    assert board is not None and board["projectKey"] == "rp_x"
    assert [r["id"] for r in board["requests"]] == ["ok"]
    assert set(board["comments"]) == {"ok"}
    thread = board["comments"]["ok"]
    assert len(thread) == MAX_PUBLIC_COMMENTS
    assert [c["body"] for c in thread[:2]] == ["c5", "c6"] and thread[-1]["body"] == f"c{MAX_PUBLIC_COMMENTS + 4}"
    assert "secret-user" not in orjson.dumps(board).decode()  # end users are named by authorName only
    assert [(i["id"], i["audience"]) for i in board["roadmap"]] == [("pub", "all"), ("tgt", "targeted")]
    assert board["changelog"] == []
    (audience,) = board["audiences"]["features"]
    assert audience["key"] == audience_key("roadmap", "tgt")
    assert audience["targeting"]["rules"][0]["filter"] == PRO
