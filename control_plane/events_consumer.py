"""Moves SDK events from the edge's spool files (``<data-dir>/events``) into the SQLite ``events`` table.

The spool and stream formats are the intake contract (``contract/intake.py``). For every ``spool-*.jsonl`` file the
consumer reads complete lines from the byte offset it stored for that file (keyed by the id in the
file's header line, so a rotated file keeps its offset), and in one transaction inserts the events
with ``INSERT … ON CONFLICT DO NOTHING`` on their id and advances the offset. A crash between the two can only
replay lines, and replayed events are ignored duplicates: delivery is at least once, storage once.

A file is removed once it is fully consumed and will never grow again: a rotated file, or an
active file whose writer is gone (its ``flock`` can be taken). A line still being written (no
newline yet) waits for the next round; a line that is not a valid event is logged and skipped.
Only one consumer runs at a time per data directory (``events/.consumer.lock``).

With a Redis URL, :class:`RedisConsumer` also reads the stream ``flagedge:events`` that edges add to
(``contract/intake.py``) as consumer group ``control-plane`` (created with MKSTREAM, from the start
of the stream, if missing). Each batch from XREADGROUP is inserted in one transaction with the same
``INSERT … ON CONFLICT DO NOTHING``, and XACKed (and XDELed: the stream is a queue, not a log) only after that
commit. A crash between commit and ack leaves the entries pending: on start the consumer claims
pending entries that sat idle longer than ``claim_idle`` (XAUTOCLAIM, from consumers that died;
repeated while running) and re-reads its own pending entries (its name is stable per host), so
they are delivered again and ignored as duplicates. A Redis that restarted empty (no group) gets
the group created again; while Redis is down the consumer retries with backoff.

Releaseo's public writes (``releaseo.*`` records) are also applied, in the transaction that stores
them and only when newly stored (:mod:`control_plane.releaseo_intake`), so each is applied once.
When that changes a project's public board, ``publish`` is called with the project ids after the
commit, still under the store lock (as an admin write publishes), once per batch.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import orjson
import redis

from contract.intake import (
    EVENTS_STREAM,
    RELEASEO_TYPES,
    ROTATED_SUFFIX,
    SPOOL_GLOB,
    STREAM_RECORD_FIELD,
    IntakeRecord,
    NotARecord,
    read_record,
    spool_dir,
    spool_file_id,
)
from contract.redis_protocol import client as redis_client
from contract.redis_protocol import redact
from control_plane import evaluation_counts, releaseo_intake
from control_plane.dialect import Connection
from control_plane.store import Store, now_iso

#: Called with the projects whose public snapshot changed, after the commit, under the store lock.
Publish = Callable[[set[str]], object]

log = logging.getLogger("control_plane.events")

LOCK_NAME = ".consumer.lock"
BATCH_BYTES = 1 << 20

GROUP = "control-plane"
REDIS_BATCH = 500
REDIS_BLOCK = 0.5  # longest XREADGROUP wait, so stop() is prompt
CLAIM_IDLE = 30.0  # a pending entry idle this long belongs to a consumer that died
MAX_BACKOFF = 30.0


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


def _record(line: bytes) -> IntakeRecord | None:
    """The record of one spool line or stream entry, or None for a header, blank or invalid line."""
    if not line.strip():
        return None
    try:
        return read_record(line)  # None for a spool file's header
    except NotARecord as e:
        log.warning("skipping a spool line or stream entry: %s", e)
        return None


def _row(record: IntakeRecord) -> tuple[Any, ...]:
    """The ``events`` row of one record."""
    event = record["event"]

    def text(value: Any) -> str | None:
        # PostgreSQL's text cannot hold NUL (the batch would fail and be retried for ever): the
        # indexed columns get U+FFFD instead; the payload keeps the exact value, JSON-escaped.
        return value.replace("\x00", "\ufffd") if isinstance(value, str) else None

    # The flag key, event name or feature id (Reflag), or DevCycle's custom event type or target.
    name = (
        event.get("key")
        or event.get("event")
        or event.get("featureId")
        or event.get("customType")
        or event.get("target")
    )
    return (
        record["id"],
        record["environment"],
        record["project"],
        record["type"],
        record["keyKind"],
        text(event.get("userId")),
        text(event.get("companyId")),
        text(name),
        record["dedupId"],
        orjson.dumps(event).decode(),
        text(event.get("timestamp")),
        record["receivedAt"] or now_iso(),
        now_iso(),
    )


INSERT = (
    "INSERT INTO events (id, environment_id, project_id, type, key_kind, user_id, company_id, name,"
    " dedup_id, payload, client_timestamp, received_at, stored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (id) DO NOTHING"
)
SAVE_OFFSET = (
    "INSERT INTO event_spool_offsets (file_id, path, byte_offset, updated_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (file_id) DO UPDATE SET path = excluded.path, byte_offset = excluded.byte_offset,"
    " updated_at = excluded.updated_at"
)


def _store(db: Connection, records: Iterable[IntakeRecord]) -> tuple[int, set[str]]:
    """Store each record once; apply Releaseo records newly stored. The number newly stored and
    the projects whose public board changed."""
    inserted = 0
    touched: set[str] = set()
    for record in records:
        new = db.execute(INSERT, _row(record)).rowcount
        inserted += new
        if new:
            evaluation_counts.apply(db, record)
        if new and record["type"] in RELEASEO_TYPES:
            project = releaseo_intake.apply(db, record)
            if project is not None:
                touched.add(project)
    return inserted, touched


def _publish(publish: Publish | None, touched: set[str]) -> None:
    if publish is not None and touched:
        try:
            publish(touched)
        except Exception:
            # The change is committed; the publisher remembers what it could not publish and
            # includes it in its next publish.
            log.exception("publishing the boards of %d project(s) failed", len(touched))


class _File:
    def __init__(self, path: Path, f: IO[bytes], file_id: str, offset: int) -> None:
        self.path, self.f, self.file_id, self.offset = path, f, file_id, offset

    def drain(self, store: Store, batch_bytes: int, publish: Publish | None = None) -> int:
        """Store every complete line after the offset, one transaction per batch."""
        inserted = 0
        while True:
            chunk = _read_lines(self.f, self.offset, batch_bytes)
            if not chunk:
                return inserted
            records = [r for r in map(_record, chunk.split(b"\n")) if r is not None]
            with store.exclusive():
                with store.transaction() as db:
                    stored, touched = _store(db, records)
                    inserted += stored
                    self.offset += len(chunk)
                    db.execute(SAVE_OFFSET, (self.file_id, self.path.name, self.offset, now_iso()))
                _publish(publish, touched)

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


def _consume_file(path: Path, store: Store, batch_bytes: int, publish: Publish | None) -> int:
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, after the lock decision
    except FileNotFoundError:
        return 0
    with f:
        header_line = f.readline()
        if not header_line.endswith(b"\n"):
            return 0  # empty, or the writer is still writing the header
        file_id = spool_file_id(header_line) or f"{path.name}@{os.fstat(f.fileno()).st_ino}"
        row = store.one("SELECT byte_offset FROM event_spool_offsets WHERE file_id = ?", (file_id,))
        spool = _File(path, f, file_id, int(row["byte_offset"]) if row else len(header_line))
        inserted = spool.drain(store, batch_bytes, publish)
        if path.name.endswith(ROTATED_SUFFIX):
            spool.remove(store)
        elif _writer_gone(path, f):
            inserted += spool.drain(store, batch_bytes, publish)  # lines written after the first pass
            spool.remove(store)
        return inserted


def consume_spool(
    data_dir: Path, store: Store, *, batch_bytes: int = BATCH_BYTES, publish: Publish | None = None
) -> int:
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
        for path in sorted(directory.glob(SPOOL_GLOB)):
            inserted += _consume_file(path, store, batch_bytes, publish)
        if inserted:
            log.info("stored %d SDK events from the spool", inserted)
        return inserted
    finally:
        os.close(lock_fd)


StreamEntry = tuple[bytes | None, dict[bytes, bytes] | None]


class RedisConsumer(threading.Thread):
    """Moves events from the Redis stream into SQLite until :meth:`stop` (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        redis_url: str,
        *,
        stream: str = EVENTS_STREAM,
        group: str = GROUP,
        consumer: str | None = None,
        batch: int = REDIS_BATCH,
        block: float = REDIS_BLOCK,
        claim_idle: float = CLAIM_IDLE,
        delete_acked: bool = True,
        publish: Publish | None = None,
    ) -> None:
        super().__init__(name="events-redis-consumer", daemon=True)
        self.store = store
        self.publish = publish
        self.url = redis_url
        self.stream = stream
        self.group = group
        self.consumer = consumer or f"control-plane@{socket.gethostname()}"
        self.batch = batch
        self.block = block
        self.claim_idle = claim_idle
        self.delete_acked = delete_acked
        self.stored = 0  # events newly stored by this consumer (duplicates not counted)
        self._redis = redis_client(
            redis_url, name="flagedge-events-consumer", socket_timeout=block + 5.0, connect_timeout=2.0
        )
        self._halt = threading.Event()
        self._ready = False  # group exists and pending entries were recovered
        self._next_claim = 0.0

    def setup(self) -> int:
        """Create the group if missing, then take back unacknowledged entries; how many were newly stored."""
        try:
            self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
            log.info("created consumer group %s on %s", self.group, self.stream)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        stored = self.claim_stale()
        start: bytes | str = "0"
        while not self._halt.is_set():  # this consumer's own pending entries (a restart after a crash)
            entries = self._read(start, block=None)
            if not entries:
                break
            stored += self.handle(entries)
            last = next((entry_id for entry_id, _ in reversed(entries) if entry_id is not None), None)
            if last is None:
                break
            start = last
        self._ready = True
        return stored

    def claim_stale(self) -> int:
        """XAUTOCLAIM entries pending longer than ``claim_idle`` on any consumer, and store them."""
        stored = 0
        cursor: bytes | str = "0-0"
        while not self._halt.is_set():
            reply = self._redis.xautoclaim(
                self.stream,
                self.group,
                self.consumer,
                min_idle_time=int(self.claim_idle * 1000),
                start_id=cursor,
                count=self.batch,
            )
            assert isinstance(reply, list)
            cursor, entries = reply[0], reply[1]
            stored += self.handle(entries)
            if cursor in (b"0-0", "0-0"):
                break
        self._next_claim = time.monotonic() + self.claim_idle
        return stored

    def _read(self, start: bytes | str, block: float | None) -> list[StreamEntry]:
        reply: Any = self._redis.xreadgroup(
            self.group,
            self.consumer,
            {self.stream: start},
            count=self.batch,
            block=None if block is None else max(1, int(block * 1000)),
        )
        if not reply:
            return []
        # RESP2: [[stream, entries]]; RESP3 (protocol=3 in the URL): {stream: [entries]}.
        entries = next(iter(reply.values()))[0] if isinstance(reply, dict) else reply[0][1]
        return list(entries)

    def handle(self, entries: Sequence[StreamEntry]) -> int:
        """Store a batch in one transaction, then acknowledge it; the number newly stored."""
        if not entries:
            return 0
        records = []
        ids = []
        for entry_id, fields in entries:
            if entry_id is None:
                continue
            ids.append(entry_id)
            if not fields:
                continue  # deleted or trimmed from the stream while pending: nothing left to store
            raw = fields.get(STREAM_RECORD_FIELD.encode())
            record = _record(raw) if isinstance(raw, bytes) else None
            if record is None:
                log.warning("skipping stream entry %s: not an event record", entry_id.decode(errors="replace"))
            else:
                records.append(record)
        stored = 0
        if records:
            with self.store.exclusive():
                with self.store.transaction() as db:
                    stored, touched = _store(db, records)
                _publish(self.publish, touched)
        if ids:
            self.acknowledge(ids)
        self.stored += stored
        return stored

    def acknowledge(self, ids: list[bytes]) -> None:
        """XACK (and XDEL) entries whose events are committed to SQLite."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.xack(self.stream, self.group, *ids)
        if self.delete_acked:
            pipe.xdel(self.stream, *ids)
        pipe.execute()

    def poll(self) -> int:
        """One round: recover if needed, claim stale entries when due, read new ones (blocking up to ``block``)."""
        stored = 0 if self._ready else self.setup()
        if time.monotonic() >= self._next_claim:
            stored += self.claim_stale()
        return stored + self.handle(self._read(">", self.block))

    def run(self) -> None:
        failures = 0
        while not self._halt.is_set():
            try:
                stored = self.poll()
            except redis.ResponseError as e:
                self._ready = False
                if "NOGROUP" in str(e):  # Redis restarted empty, or the stream was deleted
                    log.warning("consumer group %s on %s is gone; creating it again", self.group, self.stream)
                    continue
                log.error("reading SDK events from Redis failed: %s", e)
                self._halt.wait(1.0)
                continue
            except (redis.RedisError, OSError) as e:
                self._ready = False
                if failures == 0:
                    log.warning("reading SDK events from Redis at %s failed (%s); retrying", redact(self.url), e)
                failures += 1
                self._halt.wait(min(MAX_BACKOFF, 0.25 * 2 ** min(failures, 8)))
                continue
            except Exception:
                self._ready = False
                log.exception("storing SDK events from Redis failed; retrying")
                self._halt.wait(1.0)
                continue
            if failures:
                log.info("reading SDK events from Redis at %s again", redact(self.url))
                failures = 0
            if stored:
                log.debug("stored %d SDK events from Redis", stored)

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the current batch and stop (call before closing the store)."""
        self._halt.set()
        if self.is_alive():
            self.join(timeout)
        self._redis.close()


class ConsumerThread(threading.Thread):
    """Runs :func:`consume_spool` every ``interval`` seconds until :meth:`stop`; with a Redis URL also
    a :class:`RedisConsumer`, started and stopped with it."""

    def __init__(
        self,
        data_dir: Path,
        store: Store,
        interval: float = 1.0,
        redis_url: str | None = None,
        publish: Publish | None = None,
    ) -> None:
        super().__init__(name="events-consumer", daemon=True)
        self.data_dir = data_dir
        self.store = store
        self.interval = interval
        self.publish = publish
        self.redis = RedisConsumer(store, redis_url, publish=publish) if redis_url else None
        self._halt = threading.Event()

    def start(self) -> None:
        super().start()
        if self.redis is not None:
            self.redis.start()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                consume_spool(self.data_dir, self.store, publish=self.publish)
            except Exception:
                log.exception("consuming the event spool failed; retrying in %.1fs", self.interval)
            self._halt.wait(self.interval)

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the current pass and stop (call before closing the store)."""
        self._halt.set()
        if self.redis is not None:
            self.redis.stop(timeout)
        if self.is_alive():
            self.join(timeout)


def start_consumer_thread(
    data_dir: Path,
    store: Store,
    interval: float = 1.0,
    redis_url: str | None = None,
    publish: Publish | None = None,
) -> ConsumerThread:
    """The spool consumer and, given ``redis_url``, the Redis stream consumer, both running."""
    thread = ConsumerThread(data_dir, store, interval, redis_url, publish)
    thread.start()
    return thread
