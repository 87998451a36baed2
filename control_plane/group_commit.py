"""Group commit for a high-volume insert (the key API's telemetry): rows that arrive while one
commit is being written go into the next one, so the fsync that makes a row durable is paid once
per batch instead of once per request.

Contract:

* :meth:`GroupCommit.insert` returns the new row's id (the statement ends ``RETURNING id``) once
  the transaction holding the row has committed (acknowledged means on disk), or raises the
  error that failed that transaction (no row of a failed batch is stored).
* One batch is in flight at a time, on a worker thread, on the group commit's own connection
  (:meth:`Store.connect`): the event loop keeps taking requests meanwhile, and the store's own
  connection keeps reading (WAL). A batch holds at most ``max_batch`` rows.
* A failed commit is recorded as a storage failure of the store (``/ready`` and the 503 answers
  see it) and cleared by the next commit that succeeds.
* Used from one event loop (the control plane's single worker); not thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from control_plane.dialect import DATABASE_ERRORS, Connection
from control_plane.store import Store

Params = tuple[Any, ...]


class GroupCommit:
    def __init__(self, store: Store, sql: str, max_batch: int = 1000) -> None:
        """``sql``: one INSERT statement ``… RETURNING id`` whose parameters each :meth:`insert` call
        supplies."""
        self.store = store
        self.sql = sql
        self.max_batch = max_batch
        self._conn: Connection | None = None
        self._pending: list[tuple[Params, asyncio.Future[int]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def insert(self, params: Params) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((params, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            try:
                ids = await asyncio.to_thread(self._commit, [params for params, _ in batch])
            except Exception as e:
                # Every waiter gets the error (a storage fault answers 503, anything else 500);
                # the loop goes on with the next batch.
                self.store.note_failure(e)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                continue
            for (_, future), rowid in zip(batch, ids, strict=True):
                if not future.done():  # the request may have been cancelled (client gone)
                    future.set_result(rowid)
        # Nothing is pending and no await follows: the next insert starts a new writer.
        self._writer = None

    def _commit(self, rows: list[Params]) -> list[int]:
        if self._conn is None:
            self._conn = self.store.connect()
        conn = self._conn
        try:
            with self.store.write_transaction(conn):
                ids = [int(conn.execute(self.sql, row).fetchone()[0]) for row in rows]
        except BaseException:
            # The next batch starts on a new connection (a PostgreSQL connection broken by a
            # server restart stays broken).
            with contextlib.suppress(*DATABASE_ERRORS):
                conn.close()
            self._conn = None
            raise
        if self.store.failure is not None:
            self.store.probe()
        return ids

    async def close(self) -> None:
        """Wait for what is pending to commit, then close the connection."""
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class GroupCommits:
    """The group-commit writers of one app, one per INSERT statement, made on first use."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._writers: dict[str, GroupCommit] = {}

    def writer(self, sql: str) -> GroupCommit:
        if sql not in self._writers:
            self._writers[sql] = GroupCommit(self.store, sql)
        return self._writers[sql]

    async def close(self) -> None:
        for writer in self._writers.values():
            await writer.close()
