"""The LMDB snapshot store: written by one process (the control plane, or ``sync`` on an edge
host), read by every edge worker.

Layout, one LMDB environment in ``<data-dir>/snapshots``:

* ``meta``: ``version`` → 8-byte big-endian global version, bumped by every publish.
* ``environments``: environment id → ``{"version", "project", "environment", "document"}``; the
  ``version`` is stamped by the writer (see :func:`stamped`): the version that last wrote it.
* ``sdk_keys``: SHA-256 hex of an SDK key → ``{"environment", "kind", "project"}``.
* ``releases``: ``"{organisation}/{application}"`` → release data.
* ``widgets``: Releaseo project key → widget config.

Every value is framed by :mod:`contract.framing`; one write transaction carries a whole
:class:`ChangeSet`, so readers see all of it or none of it, under one new version. Versions only
go up: a change under a version that is not newer than the stored one is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import lmdb

from contract.framing import CorruptValue, decode, encode

META = "meta"
VERSION_KEY = b"version"
DEFAULT_MAP_SIZE = 1 << 30

#: A table's items in a change: key → new value, or None to delete the key.
Items = dict[str, dict[str, Any] | None]
#: Raw (still framed) values of every data table: table → key → bytes.
RawTables = dict[str, dict[str, bytes]]


@dataclass
class ChangeSet:
    """One atomic change to the store: everything in it becomes visible under one new version.

    Its fields are the data tables, in the order they are written; :data:`TABLES` is derived
    from them, so a new table is declared here once.
    """

    environments: Items = field(default_factory=dict)
    sdk_keys: Items = field(default_factory=dict)
    releases: Items = field(default_factory=dict)
    widgets: Items = field(default_factory=dict)

    def tables(self) -> Iterator[tuple[str, Items]]:
        for name in TABLES:
            yield name, getattr(self, name)

    def table(self, name: str) -> Items:
        if name not in TABLES:
            raise KeyError(name)
        items: Items = getattr(self, name)
        return items

    def update(self, other: ChangeSet) -> None:
        for name, items in other.tables():
            self.table(name).update(items)

    def is_empty(self) -> bool:
        return not any(items for _, items in self.tables())

    def size(self) -> int:
        return sum(len(items) for _, items in self.tables())


#: The data tables (``meta`` holds only the version).
TABLES: tuple[str, ...] = tuple(f.name for f in fields(ChangeSet))
#: Tables whose values carry the version that last wrote them.
STAMPED_TABLES = frozenset({"environments"})


def stamped(table: str, value: dict[str, Any], version: int) -> dict[str, Any]:
    """``value`` as stored under ``version``: environments carry it, so an edge recompiles only
    the environments whose stamp moved."""
    return {**value, "version": version} if table in STAMPED_TABLES else value


def unstamped(table: str, value: dict[str, Any]) -> dict[str, Any]:
    """``value`` without its version stamp: what to compare to tell whether content changed."""
    return {k: v for k, v in value.items() if k != "version"} if table in STAMPED_TABLES else value


def snapshot_dir(data_dir: Path) -> Path:
    return data_dir / "snapshots"


def open_env(data_dir: Path, *, readonly: bool, map_size: int = DEFAULT_MAP_SIZE) -> lmdb.Environment:
    path = snapshot_dir(data_dir)
    if not readonly:
        path.mkdir(parents=True, exist_ok=True)
    return lmdb.open(
        str(path),
        map_size=map_size,
        max_dbs=len(TABLES) + 1,
        readonly=readonly,
        # Readers must not create the store; the writer fsyncs every publish.
        create=not readonly,
        sync=True,
        metasync=True,
        readahead=False,
        max_readers=1024,
    )


class _Store:
    """What the writer and the readers share: the environment, its tables, consistent reads."""

    env: lmdb.Environment
    _db: dict[str, Any]
    _meta: Any

    def _open_tables(self, *, create: bool) -> None:
        self._meta = self.env.open_db(META.encode(), create=create)
        self._db = {name: self.env.open_db(name.encode(), create=create) for name in TABLES}

    def _begin(self) -> lmdb.Transaction[bytes]:
        return self.env.begin()

    def version(self) -> int:
        with self._begin() as txn:
            raw = txn.get(VERSION_KEY, db=self._meta)
        return int.from_bytes(raw, "big") if raw else 0

    def read_all(self) -> tuple[int, RawTables]:
        """The version and every raw value of every table, from one consistent read transaction."""
        with self._begin() as txn:
            raw = txn.get(VERSION_KEY, db=self._meta)
            version = int.from_bytes(raw, "big") if raw else 0
            tables = {name: {bytes(k).decode(): bytes(v) for k, v in txn.cursor(db=self._db[name])} for name in TABLES}
        return version, tables

    def close(self) -> None:
        self.env.close()


class StoreChanged(Exception):
    """The store is not at the version a writer based its change on: someone else wrote it."""

    def __init__(self, current: int, base: int) -> None:
        super().__init__(f"the store is at version {current}, not at {base} as expected")
        self.current, self.base = current, base


class SnapshotWriter(_Store):
    """The single writer of a data dir's store."""

    def __init__(self, data_dir: Path, map_size: int = DEFAULT_MAP_SIZE) -> None:
        self.env = open_env(data_dir, readonly=False, map_size=map_size)
        self._open_tables(create=True)

    def publish(self, change: ChangeSet, version: int | None = None, *, base: int | None = None) -> int:
        """Write ``change`` in one transaction under a new version and return it.

        ``version`` (used by ``sync``, and by a control plane continuing above versions other
        hosts have seen) must be newer than the stored one; a version that would go backwards is
        refused with ValueError and nothing is written. ``base``: the version ``change`` was
        computed against; if the store holds another one (another writer), StoreChanged is
        raised inside the write transaction and nothing is written.
        """
        with self.env.begin(write=True) as txn:
            raw = txn.get(VERSION_KEY, db=self._meta)
            current = int.from_bytes(raw, "big") if raw else 0
            if base is not None and current != base:
                raise StoreChanged(current, base)
            new = current + 1 if version is None else version
            if new <= current:
                raise ValueError(f"version {new} is not newer than {current}")
            for table, items in change.tables():
                db = self._db[table]
                for key, value in items.items():
                    if value is None:
                        txn.delete(key.encode(), db=db)
                    else:
                        txn.put(key.encode(), encode(stamped(table, value, new)), db=db)
            txn.put(VERSION_KEY, new.to_bytes(8, "big"), db=self._meta)
        return new


class SnapshotReader(_Store):
    """Read-only access for edge workers; open it after the fork (in the app lifespan)."""

    def __init__(self, data_dir: Path, map_size: int = DEFAULT_MAP_SIZE) -> None:
        self.env = open_env(data_dir, readonly=True, map_size=map_size)
        self._open_tables(create=False)
        self._owns_env = True

    @classmethod
    def over(cls, writer: SnapshotWriter) -> SnapshotReader:
        """A reader over ``writer``'s open environment, for a writer and readers in one process
        (py-lmdb opens an environment once per process); closing it leaves the writer's open."""
        reader = cls.__new__(cls)
        reader.env = writer.env
        reader._open_tables(create=False)
        reader._owns_env = False
        return reader

    def close(self) -> None:
        if self._owns_env:
            self.env.close()

    def _begin(self) -> lmdb.Transaction[bytes]:
        try:
            return self.env.begin()
        except lmdb.MapResizedError:
            # The writer's map (--lmdb-map-size) and the data grew past this reader's map: adopt
            # the new size (LMDB's documented answer to MDB_MAP_RESIZED) instead of failing forever.
            self.env.set_mapsize(0)
            return self.env.begin()


def iter_decoded(values: dict[str, bytes]) -> Iterator[tuple[str, Any | CorruptValue]]:
    """Each key with its decoded value, or the :class:`CorruptValue` that says why it cannot be read."""
    for key, raw in values.items():
        try:
            yield key, decode(raw)
        except CorruptValue as e:
            yield key, e
