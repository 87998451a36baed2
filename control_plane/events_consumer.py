"""Moves SDK events from the edge's spool files (``<data-dir>/events``) into the SQLite ``events`` table.

The spool format is described in ``server/events.py``. For every ``spool-*.jsonl`` file the
consumer reads complete lines from the byte offset it stored for that file (keyed by the id in the
file's header line, so a rotated file keeps its offset), and in one transaction inserts the events
with ``INSERT OR IGNORE`` on their id and advances the offset. A crash between the two can only
replay lines, and replayed events are ignored duplicates: delivery is at least once, storage once.

A file is removed once it is fully consumed and will never grow again: a rotated file, or an
active file whose writer is gone (its ``flock`` can be taken). A line still being written (no
newline yet) waits for the next round; a line that is not a valid event is logged and skipped.
Only one consumer runs at a time per data directory (``events/.consumer.lock``).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import IO, Any

import orjson

from control_plane.store import Store, now_iso
from server.events import ROTATED_SUFFIX, spool_dir

log = logging.getLogger("control_plane.events")

LOCK_NAME = ".consumer.lock"
BATCH_BYTES = 1 << 20
MAX_ID_CHARS = 200


def _read_lines(f: IO[bytes], offset: int, batch_bytes: int) -> bytes:
    """Complete lines from ``offset``: about ``batch_bytes`` of them, at least one if there is one."""
    f.seek(offset)
    data = f.read(batch_bytes)
    while data and b"\n" not in data:
        more = f.read(batch_bytes)
        if not more:
            break
        data += more
    end = data.rfind(b"\n")
    return data[: end + 1] if end >= 0 else b""


def _row(line: bytes) -> tuple[Any, ...] | None:
    """The ``events`` row of one spool line, or None for a header, blank or invalid line."""
    if not line.strip():
        return None
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        log.warning("skipping a spool line that is not JSON (%d bytes)", len(line))
        return None
    if not isinstance(record, dict) or "spool" in record:
        return None
    event_id, kind, env, event = record.get("id"), record.get("type"), record.get("environment"), record.get("event")
    if not (
        isinstance(event_id, str)
        and 0 < len(event_id) <= MAX_ID_CHARS
        and isinstance(kind, str)
        and isinstance(env, str)
        and isinstance(event, dict)
    ):
        log.warning("skipping a spool line that is not an event")
        return None

    def text(value: Any) -> str | None:
        return value if isinstance(value, str) else None

    name = event.get("key") or event.get("event") or event.get("featureId")
    return (
        event_id,
        env,
        text(record.get("project")),
        kind,
        text(record.get("keyKind")),
        text(event.get("userId")),
        text(event.get("companyId")),
        text(name),
        text(record.get("dedupId")),
        orjson.dumps(event).decode(),
        text(event.get("timestamp")),
        text(record.get("receivedAt")) or now_iso(),
        now_iso(),
    )


INSERT = (
    "INSERT OR IGNORE INTO events (id, environment_id, project_id, type, key_kind, user_id, company_id, name,"
    " dedup_id, payload, client_timestamp, received_at, stored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SAVE_OFFSET = (
    "INSERT INTO event_spool_offsets (file_id, path, byte_offset, updated_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (file_id) DO UPDATE SET path = excluded.path, byte_offset = excluded.byte_offset,"
    " updated_at = excluded.updated_at"
)


def _store_lines(db: sqlite3.Connection, chunk: bytes) -> int:
    inserted = 0
    for line in chunk.split(b"\n"):
        row = _row(line)
        if row is not None:
            inserted += db.execute(INSERT, row).rowcount
    return inserted


class _File:
    def __init__(self, path: Path, f: IO[bytes], file_id: str, offset: int) -> None:
        self.path, self.f, self.file_id, self.offset = path, f, file_id, offset

    def drain(self, store: Store, batch_bytes: int) -> int:
        """Store every complete line after the offset, one transaction per batch."""
        inserted = 0
        while True:
            chunk = _read_lines(self.f, self.offset, batch_bytes)
            if not chunk:
                return inserted
            with store.transaction() as db:
                inserted += _store_lines(db, chunk)
                self.offset += len(chunk)
                db.execute(SAVE_OFFSET, (self.file_id, self.path.name, self.offset, now_iso()))

    def remove(self, store: Store) -> None:
        tail = os.fstat(self.f.fileno()).st_size - self.offset
        if tail > 0:
            log.warning("%s ends in %d bytes of an unfinished line; dropping them", self.path.name, tail)
        self.path.unlink(missing_ok=True)
        with store.transaction() as db:
            db.execute("DELETE FROM event_spool_offsets WHERE file_id = ?", (self.file_id,))


def _writer_gone(path: Path, f: IO[bytes]) -> bool:
    """True (keeping the lock until ``f`` closes) when no live writer holds this very file."""
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    try:
        # The path must still name the locked file: a writer may have rotated it away meanwhile.
        return os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
    except FileNotFoundError:
        return False


def _consume_file(path: Path, store: Store, batch_bytes: int) -> int:
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, after the lock decision
    except FileNotFoundError:
        return 0
    with f:
        header_line = f.readline()
        if not header_line.endswith(b"\n"):
            return 0  # empty, or the writer is still writing the header
        file_id = f"{path.name}@{os.fstat(f.fileno()).st_ino}"
        with contextlib.suppress(orjson.JSONDecodeError):
            header = orjson.loads(header_line)
            if isinstance(header, dict) and isinstance(header.get("spool"), str):
                file_id = header["spool"]
        row = store.one("SELECT byte_offset FROM event_spool_offsets WHERE file_id = ?", (file_id,))
        spool = _File(path, f, file_id, int(row["byte_offset"]) if row else len(header_line))
        inserted = spool.drain(store, batch_bytes)
        if path.name.endswith(ROTATED_SUFFIX):
            spool.remove(store)
        elif _writer_gone(path, f):
            inserted += spool.drain(store, batch_bytes)  # lines written after the first pass
            spool.remove(store)
        return inserted


def consume_spool(data_dir: Path, store: Store, *, batch_bytes: int = BATCH_BYTES) -> int:
    """One pass over the spool files; the number of events newly stored (duplicates not counted)."""
    directory = spool_dir(data_dir)
    if not directory.is_dir():
        return 0
    lock_fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # another consumer is at it
        inserted = 0
        for path in sorted(directory.glob("spool-*.jsonl")):
            inserted += _consume_file(path, store, batch_bytes)
        if inserted:
            log.info("stored %d SDK events from the spool", inserted)
        return inserted
    finally:
        os.close(lock_fd)


class ConsumerThread(threading.Thread):
    """Runs :func:`consume_spool` every ``interval`` seconds until :meth:`stop`."""

    def __init__(self, data_dir: Path, store: Store, interval: float = 1.0) -> None:
        super().__init__(name="events-consumer", daemon=True)
        self.data_dir = data_dir
        self.store = store
        self.interval = interval
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                consume_spool(self.data_dir, self.store)
            except Exception:
                log.exception("consuming the event spool failed; retrying in %.1fs", self.interval)
            self._halt.wait(self.interval)

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the current pass and stop (call before closing the store)."""
        self._halt.set()
        if self.is_alive():
            self.join(timeout)


def start_consumer_thread(data_dir: Path, store: Store, interval: float = 1.0) -> ConsumerThread:
    thread = ConsumerThread(data_dir, store, interval)
    thread.start()
    return thread
