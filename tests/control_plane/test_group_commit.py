"""``control_plane.group_commit``: concurrent inserts share commits, each caller gets its row's id
once it is committed, and a failed commit fails every row of its batch (nothing stored)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from control_plane.group_commit import GroupCommit
from control_plane.store import Store

SCHEMA = "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT NOT NULL CHECK (v != 'bad'))"


def _store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "cp.sqlite3")
    with store.transaction() as db:
        db.execute(SCHEMA)
    return store


def test_concurrent_inserts_share_commits_and_get_their_ids(tmp_path: Path) -> None:
    store = _store(tmp_path)
    writer = GroupCommit(store, "INSERT INTO t (v) VALUES (?) RETURNING id")
    commits: list[int] = []
    commit = writer._commit

    def counting(rows: list[tuple[object, ...]]) -> list[int]:
        commits.append(len(rows))
        return commit(rows)

    writer._commit = counting  # type: ignore[method-assign]

    async def run() -> list[int]:
        ids = await asyncio.gather(*(writer.insert((f"v{i}",)) for i in range(200)))
        await writer.close()
        return list(ids)

    ids = asyncio.run(run())
    assert len(set(ids)) == 200
    assert sum(commits) == 200 and len(commits) < 200, commits  # batched, not one commit each
    rows = {r["id"]: r["v"] for r in store.all("SELECT id, v FROM t")}
    assert [rows[i] for i in ids] == [f"v{i}" for i in range(200)]  # each caller got its own row's id
    store.close()


def test_a_failed_commit_fails_its_whole_batch_and_stores_nothing(tmp_path: Path) -> None:
    store = _store(tmp_path)
    writer = GroupCommit(store, "INSERT INTO t (v) VALUES (?) RETURNING id")

    async def run() -> list[object]:
        results = await asyncio.gather(writer.insert(("ok",)), writer.insert(("bad",)), return_exceptions=True)
        later = await writer.insert(("after",))  # the writer goes on
        await writer.close()
        return [*results, later]

    first, second, later = asyncio.run(run())
    assert isinstance(first, sqlite3.IntegrityError) and isinstance(second, sqlite3.IntegrityError)
    assert [r["v"] for r in store.all("SELECT v FROM t")] == ["after"]
    assert isinstance(later, int)
    store.close()


def test_store_connect_is_set_up_like_the_store(tmp_path: Path) -> None:
    store = _store(tmp_path)
    conn = store.connect()
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    finally:
        conn.close()
        store.close()


@pytest.mark.parametrize("batch", [1, 7])
def test_batches_are_bounded(tmp_path: Path, batch: int) -> None:
    store = _store(tmp_path)
    writer = GroupCommit(store, "INSERT INTO t (v) VALUES (?) RETURNING id", max_batch=batch)
    sizes: list[int] = []
    commit = writer._commit

    def counting(rows: list[tuple[object, ...]]) -> list[int]:
        sizes.append(len(rows))
        return commit(rows)

    writer._commit = counting  # type: ignore[method-assign]

    async def run() -> None:
        await asyncio.gather(*(writer.insert((str(i),)) for i in range(30)))
        await writer.close()

    asyncio.run(run())
    assert max(sizes) <= batch and sum(sizes) == 30
    store.close()
