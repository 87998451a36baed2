"""The LMDB snapshot store shared by the control plane (one writer) and edge workers (readers).

Layout, one LMDB environment in ``<data-dir>/snapshots``:

* ``meta``: ``version`` → 8-byte big-endian global version, bumped by every publish.
* ``environments``: environment id → encoded ``{"version", "project", "document"}``.
* ``sdk_keys``: SHA-256 hex of an SDK key → encoded ``{"environment", "kind"}``.
* ``releases``: ``"{organisation}/{application}"`` → encoded release data.
* ``widgets``: Releaseo project key → encoded widget config.

Every value is ``[format byte][CRC32 big-endian][orjson payload]``; a value whose checksum or
format does not match is reported, never used, so a bad write cannot replace a good snapshot.
One write transaction carries a whole publish, so readers see all of it or none of it.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lmdb
import orjson

FORMAT = 1
TABLES = (b"meta", b"environments", b"sdk_keys", b"releases", b"widgets")
VERSION_KEY = b"version"
DEFAULT_MAP_SIZE = 1 << 30


class CorruptValue(ValueError):
    """A stored value with a wrong format byte, checksum or payload."""


def encode(value: Any) -> bytes:
    payload = orjson.dumps(value)
    return struct.pack(">BI", FORMAT, zlib.crc32(payload)) + payload


def decode(raw: bytes) -> Any:
    if len(raw) < 5:
        raise CorruptValue("value too short")
    fmt, crc = struct.unpack_from(">BI", raw)
    payload = raw[5:]
    if fmt != FORMAT:
        raise CorruptValue(f"unknown format {fmt}")
    if zlib.crc32(payload) != crc:
        raise CorruptValue("checksum mismatch")
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        raise CorruptValue(f"payload is not JSON: {e}") from None


def snapshot_dir(data_dir: Path) -> Path:
    return data_dir / "snapshots"


def open_env(data_dir: Path, *, readonly: bool, map_size: int = DEFAULT_MAP_SIZE) -> lmdb.Environment:
    path = snapshot_dir(data_dir)
    if not readonly:
        path.mkdir(parents=True, exist_ok=True)
    return lmdb.open(
        str(path),
        map_size=map_size,
        max_dbs=len(TABLES),
        readonly=readonly,
        # Readers must not create the store; the writer fsyncs every publish.
        create=not readonly,
        sync=True,
        metasync=True,
        readahead=False,
        max_readers=1024,
    )


@dataclass
class Publish:
    """One atomic change to the store: everything in it becomes visible under one new version."""

    environments: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    sdk_keys: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    releases: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    widgets: dict[str, dict[str, Any] | None] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not (self.environments or self.sdk_keys or self.releases or self.widgets)


class SnapshotWriter:
    """The single writer (the control plane, or ``sync`` on an edge host)."""

    def __init__(self, data_dir: Path, map_size: int = DEFAULT_MAP_SIZE) -> None:
        self.env = open_env(data_dir, readonly=False, map_size=map_size)
        self.db = {name: self.env.open_db(name) for name in TABLES}

    def version(self) -> int:
        with self.env.begin() as txn:
            raw = txn.get(VERSION_KEY, db=self.db[b"meta"])
        return int.from_bytes(raw, "big") if raw else 0

    def publish(self, change: Publish, version: int | None = None) -> int:
        """Write ``change`` in one transaction under a new version and return it.

        ``version`` (used by ``sync``) must be newer than the stored one; a version that would
        go backwards is refused with ValueError and nothing is written.
        """
        with self.env.begin(write=True) as txn:
            raw = txn.get(VERSION_KEY, db=self.db[b"meta"])
            current = int.from_bytes(raw, "big") if raw else 0
            new = current + 1 if version is None else version
            if new <= current:
                raise ValueError(f"version {new} is not newer than {current}")
            for table, items in (
                (b"environments", change.environments),
                (b"sdk_keys", change.sdk_keys),
                (b"releases", change.releases),
                (b"widgets", change.widgets),
            ):
                for key, value in items.items():
                    k = key.encode()
                    if value is None:
                        txn.delete(k, db=self.db[table])
                    else:
                        stamped = {**value, "version": new} if table == b"environments" else value
                        txn.put(k, encode(stamped), db=self.db[table])
            txn.put(VERSION_KEY, new.to_bytes(8, "big"), db=self.db[b"meta"])
        return new

    def keys(self, table: bytes) -> list[str]:
        with self.env.begin() as txn:
            return [bytes(k).decode() for k, _ in txn.cursor(db=self.db[table])]

    def close(self) -> None:
        self.env.close()


class SnapshotReader:
    """Read-only access for edge workers; open it after the fork (in the app lifespan)."""

    def __init__(self, data_dir: Path, map_size: int = DEFAULT_MAP_SIZE) -> None:
        self.env = open_env(data_dir, readonly=True, map_size=map_size)
        self.db = {name: self.env.open_db(name, create=False) for name in TABLES}

    def _begin(self) -> lmdb.Transaction[bytes]:
        try:
            return self.env.begin()
        except lmdb.MapResizedError:
            # The writer's map (--lmdb-map-size) and the data grew past this reader's map: adopt
            # the new size (LMDB's documented answer to MDB_MAP_RESIZED) instead of failing forever.
            self.env.set_mapsize(0)
            return self.env.begin()

    def version(self) -> int:
        with self._begin() as txn:
            raw = txn.get(VERSION_KEY, db=self.db[b"meta"])
        return int.from_bytes(raw, "big") if raw else 0

    def read_all(self) -> tuple[int, dict[bytes, dict[str, bytes]]]:
        """The version and every raw value of every table, from one consistent read transaction."""
        with self._begin() as txn:
            raw = txn.get(VERSION_KEY, db=self.db[b"meta"])
            version = int.from_bytes(raw, "big") if raw else 0
            tables = {
                name: {bytes(k).decode(): bytes(v) for k, v in txn.cursor(db=self.db[name])}
                for name in TABLES
                if name != b"meta"
            }
        return version, tables

    def close(self) -> None:
        self.env.close()


def iter_decoded(values: dict[str, bytes]) -> Iterator[tuple[str, Any | CorruptValue]]:
    for key, raw in values.items():
        try:
            yield key, decode(raw)
        except CorruptValue as e:
            yield key, e
