"""Releaseo's public writes applied by the events consumer (``control_plane/releaseo_intake.py``):
spool lines as the edge writes them (``server.events.Spool``) → ``consume_spool`` → the board
tables, each record applied once, votes and follows as last-writer-wins states."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from contract import intake
from contract.framing import decode
from control_plane.board_publish import board_publisher
from control_plane.events_consumer import RedisConsumer, consume_spool
from control_plane.incremental import Builder
from control_plane.publisher import Publisher
from control_plane.store import Store, new_id
from server.events import RedisQueue, Spool
from tests.support.redis_server import RedisServer


@dataclass
class World:
    data_dir: Path
    store: Store
    spool: Spool
    project: str
    published: list[set[str]]

    def write(self, kind: str, event: dict[str, Any], *, at: str, dedup: str | None = None, project: str = "") -> None:
        self.spool.append([self.record(kind, event, at=at, dedup=dedup, project=project)[1] + b"\n"])

    def record(
        self, kind: str, event: dict[str, Any], *, at: str, dedup: str | None = None, project: str = ""
    ) -> tuple[str, bytes]:
        scope = intake.releaseo_scope(project or self.project)
        rid = intake.event_id(scope, None if dedup is None else f"{kind}\n{dedup}")
        return rid, intake.record(
            record_id=rid,
            kind=kind,
            environment=scope,
            project=project or self.project,
            key_kind="project",
            received_at=at,
            dedup_id=dedup,
            event=event,
        )

    def consume(self) -> int:
        return consume_spool(self.data_dir, self.store, publish=self.published.append)

    def request(self, review: str = "approved") -> str:
        request_id = new_id()
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO releaseo_feature_requests (id, project_id, review_status, title, source, created_at,"
                " updated_at) VALUES (?, ?, ?, 'T', 'dashboard', 'x', 'x')",
                (request_id, self.project, review),
            )
        return request_id

    def one(self, sql: str, *params: Any) -> Any:
        row = self.store.one(sql, params)
        assert row is not None
        return row[0]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    store = Store(tmp_path / "cp.sqlite3")
    with store.transaction() as db:
        db.execute("INSERT INTO users (id, name, email, password_hash, created_at) VALUES ('u', 'u', 'u@x', '-', 'x')")
        db.execute("INSERT INTO organisations (id, name, created_by, created_at) VALUES ('o1', 'acme', 'u', 'x')")
        db.execute(
            "INSERT INTO projects (id, organisation_id, key, name, created_at, updated_at)"
            " VALUES ('p1', 'o1', 'app', 'App', 'x', 'x')"
        )
    spool = Spool(tmp_path / "events")
    yield World(tmp_path, store, spool, "p1", [])
    spool.close()
    store.close()


def test_a_replayed_record_is_applied_once(world: World) -> None:
    request_id = world.request()
    comment = {"id": "c1", "requestId": request_id, "userId": "u1", "body": "+1"}
    for _ in range(2):  # the same Idempotency-Key: the same record id
        world.write(intake.RELEASEO_COMMENT, comment, at="2026-01-01T00:00:01Z", dedup="k1")
    world.write(intake.RELEASEO_VOTE, {"requestId": request_id, "userId": "u1", "voted": True}, at="t1", dedup="v")
    world.write(intake.RELEASEO_VOTE, {"requestId": request_id, "userId": "u1", "voted": True}, at="t1", dedup="v")
    assert world.consume() == 2  # duplicates are not stored again
    assert world.one("SELECT comment_count FROM releaseo_feature_requests") == 1
    assert world.one("SELECT vote_count FROM releaseo_feature_requests") == 1
    assert world.one("SELECT COUNT(*) FROM releaseo_comments") == 1
    assert world.published == [{"p1"}]


def test_one_vote_per_user_taken_back_and_never_overridden_by_an_older_write(world: World) -> None:
    request_id = world.request()

    def vote(user: str, voted: bool, at: str) -> None:
        world.write(intake.RELEASEO_VOTE, {"requestId": request_id, "userId": user, "voted": voted}, at=at)

    vote("u1", True, "2026-01-01T00:00:01Z")
    vote("u1", True, "2026-01-01T00:00:02Z")  # without a key: a second vote, still one
    vote("u2", True, "2026-01-01T00:00:02Z")
    world.consume()
    assert world.one("SELECT vote_count FROM releaseo_feature_requests") == 2
    vote("u1", False, "2026-01-01T00:00:05Z")
    vote("u2", False, "2026-01-01T00:00:01Z")  # older than u2's vote: arrived late, ignored
    world.consume()
    assert world.one("SELECT vote_count FROM releaseo_feature_requests") == 1
    assert world.one("SELECT voted FROM releaseo_votes WHERE user_id = 'u2'") == 1
    # A newer write that set the same state still moves the clock: an older opposite one loses.
    vote("u2", True, "2026-01-01T00:00:09Z")
    vote("u2", False, "2026-01-01T00:00:08Z")
    world.consume()
    assert world.one("SELECT voted FROM releaseo_votes WHERE user_id = 'u2'") == 1


def test_writes_to_what_is_not_public_are_dropped_without_stalling(world: World) -> None:
    pending = world.request("pending")
    approved = world.request()
    world.write(intake.RELEASEO_COMMENT, {"id": "c1", "requestId": pending, "userId": "u", "body": "x"}, at="t")
    world.write(intake.RELEASEO_VOTE, {"requestId": "gone", "userId": "u", "voted": True}, at="t")
    world.write(intake.RELEASEO_FOLLOW, {"itemId": "gone", "userId": "u", "following": True}, at="t")
    world.write(intake.RELEASEO_IDENTIFY, {"userId": "u", "properties": {}}, at="t", project="deleted-project")
    world.write(intake.RELEASEO_VOTE, {"requestId": approved, "userId": "u", "voted": True}, at="t")
    assert world.consume() == 5
    assert world.one("SELECT COUNT(*) FROM releaseo_comments") == 0
    assert world.one("SELECT vote_count FROM releaseo_feature_requests WHERE id = ?", approved) == 1
    assert world.one("SELECT COUNT(*) FROM releaseo_sdk_users") == 0


def test_submissions_start_pending_and_identify_merges_properties(world: World) -> None:
    submission = {"id": "fr1", "userId": "u1", "title": "Dark mode", "categoryId": "no-such-category"}
    world.write(intake.RELEASEO_SUBMIT, submission, at="2026-01-01T00:00:01Z")
    world.write(intake.RELEASEO_IDENTIFY, {"userId": "u1", "properties": {"plan": "pro", "seats": 2}}, at="t2")
    world.write(intake.RELEASEO_IDENTIFY, {"userId": "u1", "properties": {"seats": 3}}, at="t3")
    world.write(intake.RELEASEO_EVENT, {"userId": "u1", "event": "opened"}, at="t4")
    world.consume()
    row = world.store.one("SELECT * FROM releaseo_feature_requests WHERE id = 'fr1'")
    assert row is not None
    assert (row["review_status"], row["category_id"], row["source"]) == ("pending", None, "sdk")
    user = world.store.one("SELECT * FROM releaseo_sdk_users WHERE user_id = 'u1'")
    assert user is not None
    assert user["properties"] == '{"plan":"pro","seats":3}'
    assert (user["identify_count"], user["event_count"]) == (2, 1)
    assert world.published == []  # nothing public changed


def test_records_from_the_redis_stream_are_applied_once_and_published(world: World, redis_server: RedisServer) -> None:
    request_id = world.request()
    vote = world.record(
        intake.RELEASEO_VOTE, {"requestId": request_id, "userId": "u1", "voted": True}, at="t1", dedup="k"
    )
    queue = RedisQueue(redis_server.url)
    queue.add([vote, vote])  # the same record twice: an edge retry after a slow Redis answer
    world.write(intake.RELEASEO_VOTE, {"requestId": request_id, "userId": "u1", "voted": True}, at="t1", dedup="k")
    consumer = RedisConsumer(world.store, redis_server.url, block=0.1, publish=world.published.append)
    try:
        assert consumer.poll() == 1
    finally:
        consumer.stop()
        queue.close()
    assert world.consume() == 0  # the spooled copy of the same record: already stored
    assert world.one("SELECT vote_count FROM releaseo_feature_requests") == 1
    assert world.published == [{"p1"}]


def test_a_published_vote_patches_the_project_instead_of_building_it_whole(world: World) -> None:
    """On one control plane the consumer's publish (``control_plane.board_publish``) validates the
    projects as a write that touches no feature: the kept build is patched, nothing is built whole,
    and the board with the vote is published."""
    with world.store.transaction() as db:
        db.execute(
            "INSERT INTO environments (id, project_id, key, name, type, created_at, updated_at)"
            " VALUES ('e1', 'p1', 'production', 'Production', 'production', 'x', 'x')"
        )
        db.execute(
            "INSERT INTO releaseo_widgets (project_id, project_key, settings, version, created_at, updated_at)"
            " VALUES ('p1', 'rp_app', NULL, 1, 'x', 'x')"
        )
    request_id = world.request()
    builder = Builder()
    (world.data_dir / "cp").mkdir()
    publisher = Publisher(world.data_dir / "cp", world.store)
    try:
        with world.store.snapshot() as db:
            builder.warm(db, "p1")
        publish = board_publisher(world.store, builder, publisher)
        before = dict(builder.counts)
        world.write(intake.RELEASEO_VOTE, {"requestId": request_id, "userId": "u1", "voted": True}, at="t1", dedup="v")
        assert consume_spool(world.data_dir, world.store, publish=publish) == 1
        assert builder.counts["whole"] == before["whole"]
        assert builder.counts["patched"] == before["patched"] + 1  # its one environment
        board = publisher.writer.get("boards", "rp_app")
        assert board is not None
        (request,) = decode(board)["requests"]
        assert request["id"] == request_id and request["voteCount"] == 1
    finally:
        publisher.close()
