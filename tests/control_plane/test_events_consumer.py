"""The event spool consumer: spool files written by the edge's Spool → the store's ``events`` table
(every test on each store: ``database_url``)."""

from __future__ import annotations

import fcntl
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from contract.intake import ROTATED_SUFFIX, event_id
from control_plane.events_consumer import LOCK_NAME, consume_spool, start_consumer_thread
from control_plane.store import Store
from server.events import Spool


@pytest.fixture
def store_path(tmp_path: Path, database_url: str | None) -> Path | str:
    """Where the store is: a SQLite file in the test's directory, or a fresh PostgreSQL database."""
    return database_url or tmp_path / "cp.sqlite3"


@pytest.fixture
def store(store_path: Path | str) -> Iterator[Store]:
    s = Store(store_path)
    yield s
    s.close()


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    sp = Spool(tmp_path / "events")
    yield sp
    sp.close()


def line(user: str, *, dedup: str | None = None, kind: str = "user", env: str = "env1") -> bytes:
    """One spool line as the edge writes it."""
    record = {
        "id": event_id(env, dedup) if dedup else uuid.uuid4().hex,
        "type": kind,
        "environment": env,
        "project": "proj1",
        "keyKind": "client",
        "receivedAt": "2025-01-01T00:00:00.000Z",
        "dedupId": dedup,
        "event": {"userId": user, "attributes": {"n": 1}},
    }
    return orjson.dumps(record) + b"\n"


def users(store: Store) -> list[str]:
    return [r["user_id"] for r in store.all("SELECT user_id FROM events ORDER BY user_id")]


def spool_files(tmp_path: Path) -> list[str]:
    return sorted(f.name for f in (tmp_path / "events").glob("spool-*.jsonl"))


def test_consume_stores_events_once(tmp_path: Path, store: Store, spool: Spool) -> None:
    assert consume_spool(tmp_path, store) == 0  # nothing spooled yet
    spool.append([line("a"), line("b")])
    spool.append([line("c")])
    assert consume_spool(tmp_path, store) == 3
    row = store.one("SELECT * FROM events WHERE user_id = 'a'")
    assert row is not None
    assert (row["type"], row["environment_id"], row["project_id"], row["key_kind"]) == (
        "user",
        "env1",
        "proj1",
        "client",
    )
    assert orjson.loads(row["payload"]) == {"userId": "a", "attributes": {"n": 1}}
    assert row["received_at"] == "2025-01-01T00:00:00.000Z" and row["stored_at"]
    (offset,) = store.all("SELECT * FROM event_spool_offsets")
    assert offset["byte_offset"] == spool.path.stat().st_size and offset["path"] == spool.path.name
    assert consume_spool(tmp_path, store) == 0
    assert spool_files(tmp_path) == [spool.path.name]  # the writer is alive: its file stays


def test_restart_continues_where_it_stopped(tmp_path: Path, store_path: Path | str, spool: Spool) -> None:
    first = Store(store_path)
    spool.append([line("a"), line("b"), line("c")])
    assert consume_spool(tmp_path, first) == 3
    with first.transaction() as db:
        db.execute("DELETE FROM events")  # were the file re-read from the start, these would come back
    first.close()
    spool.append([line("d"), line("e")])
    restarted = Store(store_path)
    try:
        assert consume_spool(tmp_path, restarted) == 2
        assert users(restarted) == ["d", "e"]
    finally:
        restarted.close()


def test_duplicates_are_ignored(tmp_path: Path, store: Store, spool: Spool) -> None:
    spool.append([line("a", dedup="req-1"), line("b")])
    spool.append([line("a", dedup="req-1")])  # the client retried
    assert consume_spool(tmp_path, store) == 2
    with store.transaction() as db:
        db.execute("DELETE FROM event_spool_offsets")  # a replay of the whole file (at-least-once)
    assert consume_spool(tmp_path, store) == 0
    assert users(store) == ["a", "b"]
    spool.append([line("a", dedup="req-1", env="env2")])  # another environment's id is another event
    assert consume_spool(tmp_path, store) == 1


def test_a_line_still_being_written_waits(tmp_path: Path, store: Store, spool: Spool) -> None:
    spool.append([line("a")])
    whole = line("b")
    fd = spool._open()
    os.write(fd, whole[:20])
    assert consume_spool(tmp_path, store) == 1
    os.write(fd, whole[20:])
    assert consume_spool(tmp_path, store) == 1
    assert users(store) == ["a", "b"]


def test_bad_lines_are_skipped(tmp_path: Path, store: Store, spool: Spool) -> None:
    spool.append([line("a"), b"not json\n", b"[1, 2]\n", b'{"id": 5}\n', b"\n", line("b")])
    assert consume_spool(tmp_path, store) == 2
    assert users(store) == ["a", "b"]


def test_rotated_files_are_removed_once_consumed(tmp_path: Path, store: Store) -> None:
    spool = Spool(tmp_path / "events", max_bytes=600)
    for i in range(20):
        spool.append([line(f"u{i:02}")])
    assert any(n.endswith(ROTATED_SUFFIX) for n in spool_files(tmp_path))
    assert consume_spool(tmp_path, store) == 20
    assert not any(n.endswith(ROTATED_SUFFIX) for n in spool_files(tmp_path))
    assert users(store) == [f"u{i:02}" for i in range(20)]
    remaining = store.all("SELECT path FROM event_spool_offsets")
    assert all(not r["path"].endswith(ROTATED_SUFFIX) for r in remaining)
    spool.close()


def test_offset_follows_a_rotated_file(tmp_path: Path, store: Store, spool: Spool) -> None:
    spool.append([line("a"), line("b")])
    assert consume_spool(tmp_path, store) == 2
    with store.transaction() as db:
        db.execute("DELETE FROM events")
    spool.max_bytes = 1
    spool.append([line("c")])  # written, then the file is renamed to its rotated name
    (rotated,) = spool_files(tmp_path)
    assert rotated.endswith(ROTATED_SUFFIX)
    assert consume_spool(tmp_path, store) == 1
    assert users(store) == ["c"] and spool_files(tmp_path) == []
    assert store.all("SELECT * FROM event_spool_offsets") == []


def test_a_dead_writers_file_is_removed(tmp_path: Path, store: Store) -> None:
    spool = Spool(tmp_path / "events")
    spool.append([line("a")])
    path = spool.path
    fd = spool._open()
    os.write(fd, line("b")[:15])  # died in the middle of a write
    spool.close()
    assert consume_spool(tmp_path, store) == 1
    assert not path.exists() and store.all("SELECT * FROM event_spool_offsets") == []
    again = Spool(tmp_path / "events")  # a new process with the same pid starts a new file
    again.append([line("c")])
    assert consume_spool(tmp_path, store) == 1
    assert users(store) == ["a", "c"]
    again.close()


def test_a_reused_file_ends_a_torn_line_first(tmp_path: Path, store: Store) -> None:
    spool = Spool(tmp_path / "events")
    spool.append([line("a")])
    os.write(spool._open(), b'{"id": "torn')
    spool.close()
    again = Spool(tmp_path / "events")  # same pid, the file is still there
    again.append([line("b")])
    assert consume_spool(tmp_path, store) == 2
    assert users(store) == ["a", "b"]
    again.close()


def test_one_consumer_at_a_time(tmp_path: Path, store: Store, spool: Spool) -> None:
    spool.append([line("a")])
    fd = os.open(tmp_path / "events" / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert consume_spool(tmp_path, store) == 0
    finally:
        os.close(fd)
    assert consume_spool(tmp_path, store) == 1


def test_consumer_thread(tmp_path: Path, store: Store, spool: Spool) -> None:
    thread = start_consumer_thread(tmp_path, store, interval=0.02)
    try:
        spool.append([line("a"), line("b")])
        deadline = time.monotonic() + 5
        while len(users(store)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert users(store) == ["a", "b"]
    finally:
        thread.stop()
    assert not thread.is_alive()


def test_consumer_thread_survives_errors(tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from control_plane import events_consumer

    calls: list[Any] = []

    def failing(data_dir: Path, st: Store, **_: Any) -> int:
        calls.append(data_dir)
        raise RuntimeError("boom")

    monkeypatch.setattr(events_consumer, "consume_spool", failing)
    thread = start_consumer_thread(tmp_path, store, interval=0.01)
    deadline = time.monotonic() + 5
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    thread.stop()
    assert len(calls) >= 3 and not thread.is_alive()


def test_text_with_nul_is_stored_not_retried_for_ever(tmp_path: Path, store: Store, spool: Spool) -> None:
    # PostgreSQL's text cannot hold NUL: an SDK's user id carrying one made every batch fail and
    # the consumer retry it for ever, holding up every later event.
    spool.append([line("a\x00b"), line("c")])
    assert consume_spool(tmp_path, store) == 2
    assert users(store) == ["a\ufffdb", "c"]
    nul = store.one("SELECT payload FROM events WHERE user_id <> 'c'")
    assert nul is not None and orjson.loads(nul["payload"])["userId"] == "a\x00b"  # kept exactly
