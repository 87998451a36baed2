"""The LMDB snapshot store: written by one process (the control plane, or ``sync`` on an edge
host), read by every edge worker.

Layout, one LMDB environment in ``<data-dir>/snapshots``:

* ``meta``: ``version`` → 8-byte big-endian global version, bumped by every publish.
* ``environments``: environment id → ``{"version", "project", "environment", "document"}``, where
  ``document`` is the evaluator document without its ``features`` (those are in ``flags``); the
  ``version`` is stamped by the writer (see :func:`stamped`): the version that last wrote the
  environment or any of its flags (the writer re-stamps an environment whose flags a change
  writes), so an environment's stamp says what its ETags and ``flagStateVersion`` say.
* ``flags``: ``{environment id}/{flag key}`` (:func:`flag_key`) → ``{"project", "order",
  "definition"}``: one flag of the environment's document, and where it sits among them
  (``order`` ascending). A change to one flag writes, announces and recompiles only that flag.
* ``sdk_keys``: SHA-256 hex of an SDK key → ``{"environment", "kind", "project"}``.
* ``releases``: ``"{organisation}/{application}"`` → release data.
* ``widgets``: Releaseo project key → widget config.
* ``boards``: Releaseo project key → the project's public board: categories, approved feature
  requests with their comments, roadmap items and changelog entries that are not internal, and
  the evaluator document of their audiences (:data:`BOARD_FIELDS`; built by
  ``control_plane/board_snapshot.py``, served by ``server/releaseo.py``); stamped like
  environments, so an edge recompiles only the boards whose stamp moved.

Every value is framed by :mod:`contract.framing`; one write transaction carries a whole
:class:`ChangeSet`, so readers see all of it or none of it, under one new version. Versions only
go up: a change under a version that is not newer than the stored one is refused.

The same transaction logs what it wrote (:data:`CHANGELOG`: one entry per key, at the version
that last wrote or deleted it), so a reader at version N reads only the keys written after N
(:meth:`ReadTxn.changed_since`) instead of every value. ``meta/log-since`` is the first version
the log covers (a store written before it existed, or the log pruned); older readers read
everything. The log is pruned by the writer, oldest versions first and whole versions at a time,
to at most as many entries as the store holds values (:data:`LOG_FLOOR` at least): a reader
further behind reads everything, which then costs no more than reading the log would. Without
pruning, every key ever deleted would stay in the log.

A damaged file is refused, not read: LMDB maps ``data.mdb`` into memory, and touching a mapped
page past the end of a truncated file is a SIGBUS that kills the process. Before every
transaction (and before opening), :func:`inspect_data_file` reads the two meta pages with plain
``pread`` (never through the map) and raises :class:`StoreDamaged` when the file is shorter than
the last committed page, when its meta pages are not LMDB's, or when the file at the path is no
longer the one this process opened (:class:`StoreReplaced`: moved aside and rebuilt). A race
remains: a file cut between that check and the end of the transaction still faults; the check
narrows the window to one transaction (``read_all`` copies everything out of the map at once).
"""

from __future__ import annotations

import contextlib
import os
import struct
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
    boards: Items = field(default_factory=dict)
    flags: Items = field(default_factory=dict)

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
STAMPED_TABLES = frozenset({"environments", "boards"})
#: ``changelog``: 8-byte big-endian version + table + NUL + key → empty; ``changed-at``: table +
#: NUL + key → the version of its changelog entry (to drop that entry when the key changes again).
CHANGELOG, CHANGED_AT = "changelog", "changed-at"
LOG_SINCE_KEY = b"log-since"
#: The change log is never pruned below this many entries (:meth:`SnapshotWriter._prune`).
LOG_FLOOR = 4096
#: What changed, per table: key → new raw (framed) value, or None for a deleted key.
RawChanges = dict[str, dict[str, bytes | None]]


def flag_key(environment_id: str, key: str) -> str:
    """The ``flags`` key of one flag of an environment (environment ids hold no ``/``)."""
    return f"{environment_id}/{key}"


def flag_environment(stored_key: str) -> str:
    """The environment id of a ``flags`` key."""
    return stored_key.partition("/")[0]


def split_document(document: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    """An evaluator document as stored: its members beside ``features``, and its features."""
    features = document.get("features") or []
    return {k: v for k, v in document.items() if k != "features"}, list(features)


#: The fields of a ``boards`` value (besides ``project`` and the stamped ``version``). Audience
#: keys in ``audiences`` (an evaluator document, ``{"features": [...]}``) are
#: ``roadmap:<item id>`` and ``changelog:<entry id>``: an item or entry whose ``audience`` is
#: ``"targeted"`` is shown to a user only when the evaluator enables its key for them.
BOARD_FIELDS = ("projectKey", "categories", "requests", "comments", "roadmap", "changelog", "audiences")


def audience_key(kind: str, item_id: str) -> str:
    """The key of an item's audience in a board's ``audiences`` document."""
    return f"{kind}:{item_id}"


def stamped(table: str, value: dict[str, Any], version: int) -> dict[str, Any]:
    """``value`` as stored under ``version``: environments carry it, so an edge recompiles only
    the environments whose stamp moved."""
    return {**value, "version": version} if table in STAMPED_TABLES else value


def unstamped(table: str, value: dict[str, Any]) -> dict[str, Any]:
    """``value`` without its version stamp: what to compare to tell whether content changed."""
    return {k: v for k, v in value.items() if k != "version"} if table in STAMPED_TABLES else value


def snapshot_dir(data_dir: Path) -> Path:
    return data_dir / "snapshots"


def data_file(data_dir: Path) -> Path:
    return snapshot_dir(data_dir) / "data.mdb"


class StoreDamaged(lmdb.Error):
    """``data.mdb`` cannot be read safely (truncated, not an LMDB file, missing). Deriving from
    :class:`lmdb.Error` lets every caller that already survives LMDB's own errors survive it."""


class StoreReplaced(StoreDamaged):
    """The file at the store's path is not the one this process opened: reopen the store."""


# LMDB's meta page (64-bit builds): a 16-byte page header, then mm_magic, mm_version,
# mm_address, mm_mapsize, the free DB's MDB_db (its md_pad holds the page size), the main DB's
# MDB_db, mm_last_pg, mm_txnid. Pages 0 and 1 hold one meta each; the one with the higher
# txnid is current.
_MAGIC = 0xBEEFC0DE
_META = struct.Struct("<IIQQ4x")  # magic, version, address, mapsize, free DB md_pad (skipped)
_PSIZE_AT, _LAST_PG_AT, _TXNID_AT, _META_END = 40, 136, 144, 152


@dataclass(frozen=True)
class DataFile:
    """What the meta pages of ``data.mdb`` say, read without mapping the file."""

    inode: int
    size: int
    page_size: int
    last_page: int
    txnid: int

    @property
    def needed(self) -> int:
        """Bytes the last committed transaction needs: every page up to ``last_page``."""
        return (self.last_page + 1) * self.page_size


def data_file_meta(data_dir: Path) -> DataFile:
    """What the meta pages of ``data_dir``'s ``data.mdb`` say, whether or not the file is long
    enough for them; :class:`StoreDamaged` if it is missing or its meta pages are not LMDB's."""
    path = data_file(data_dir)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise StoreDamaged(f"{path} is missing") from None
    try:
        st = os.fstat(fd)
        first = os.pread(fd, _META_END, 0)
        if len(first) < _META_END or _META.unpack_from(first, 16)[0] != _MAGIC:
            raise StoreDamaged(f"{path} ({st.st_size} bytes) does not start with an LMDB meta page")
        (page_size,) = struct.unpack_from("<I", first, _PSIZE_AT)
        second = os.pread(fd, _META_END, page_size) if page_size >= _META_END else b""
    finally:
        os.close(fd)
    metas = [m for m in (first, second) if len(m) == _META_END and _META.unpack_from(m, 16)[0] == _MAGIC]
    if len(metas) < 2:
        raise StoreDamaged(f"{path} ({st.st_size} bytes) lacks LMDB's second meta page")
    current = max(metas, key=lambda m: struct.unpack_from("<Q", m, _TXNID_AT)[0])
    (last_page,) = struct.unpack_from("<Q", current, _LAST_PG_AT)
    (txnid,) = struct.unpack_from("<Q", current, _TXNID_AT)
    return DataFile(st.st_ino, st.st_size, page_size, last_page, txnid)


def inspect_data_file(data_dir: Path) -> DataFile:
    """The meta of ``data_dir``'s ``data.mdb``; :class:`StoreDamaged` if reading it through LMDB's
    map could fault (it is shorter than its last committed page) or it is not an LMDB file."""
    meta = data_file_meta(data_dir)
    if meta.size < meta.needed:
        raise StoreDamaged(
            f"{data_file(data_dir)} is truncated: {meta.size} bytes, its last committed transaction needs {meta.needed}"
        )
    return meta


def open_env(data_dir: Path, *, readonly: bool, map_size: int = DEFAULT_MAP_SIZE) -> lmdb.Environment:
    path = snapshot_dir(data_dir)
    if not readonly:
        path.mkdir(parents=True, exist_ok=True)
    return lmdb.open(
        str(path),
        map_size=map_size,
        max_dbs=len(TABLES) + 3,
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
    data_dir: Path
    _inode: int
    _db: dict[str, Any]
    _meta: Any
    _log: Any
    _changed_at: Any

    def _open_env(self, data_dir: Path, *, readonly: bool, map_size: int) -> None:
        self.data_dir = data_dir
        before = inspect_data_file(data_dir).inode if readonly or data_file(data_dir).exists() else None
        self.env = open_env(data_dir, readonly=readonly, map_size=map_size)
        try:
            # Checked again after the open (py-lmdb does not expose the descriptor): a file
            # swapped in between is caught here, one swapped later by check().
            self._inode = inspect_data_file(data_dir).inode
            if before is not None and before != self._inode:
                raise StoreReplaced(f"{data_file(data_dir)} was replaced while it was being opened")
        except BaseException:
            self.env.close()
            raise

    @property
    def inode(self) -> int:
        """The inode of the ``data.mdb`` this process opened (a rebuilt file is another one)."""
        return self._inode

    def check(self) -> DataFile:
        """Raise :class:`StoreDamaged` unless the open file can be read safely now."""
        meta = inspect_data_file(self.data_dir)
        if meta.inode != self._inode:
            raise StoreReplaced(f"{data_file(self.data_dir)} was replaced since this process opened it")
        return meta

    def _open_tables(self, *, create: bool) -> None:
        self._meta = self.env.open_db(META.encode(), create=create)
        self._db = {name: self.env.open_db(name.encode(), create=create) for name in TABLES}
        self._log = self.env.open_db(CHANGELOG.encode(), create=create)
        self._changed_at = self.env.open_db(CHANGED_AT.encode(), create=create)

    def _begin(self) -> lmdb.Transaction[bytes]:
        self.check()
        return self.env.begin()

    def version(self) -> int:
        with self._begin() as txn:
            raw = txn.get(VERSION_KEY, db=self._meta)
        return int.from_bytes(raw, "big") if raw else 0

    def get(self, table: str, key: str) -> bytes | None:
        """One raw (still framed) value, or None when ``table`` has no ``key``."""
        with self._begin() as txn:
            raw = txn.get(key.encode(), db=self._db[table])
            return bytes(raw) if raw is not None else None

    def read_all(self) -> tuple[int, RawTables]:
        """The version and every raw value of every table, from one consistent read transaction."""
        with self.reading() as txn:
            return txn.version, txn.tables()

    @contextlib.contextmanager
    def reading(self) -> Iterator[ReadTxn]:
        """One consistent read transaction: everything read through it is of one version."""
        with self._begin() as txn:
            yield ReadTxn(self, txn)

    def close(self) -> None:
        self.env.close()


class ReadTxn:
    """Reads of one version of the store (values are copied out of the map)."""

    def __init__(self, store: _Store, txn: lmdb.Transaction[bytes]) -> None:
        self._store, self._txn = store, txn
        raw = txn.get(VERSION_KEY, db=store._meta)
        self.version = int.from_bytes(raw, "big") if raw else 0

    def tables(self) -> RawTables:
        """Every raw value of every table."""
        return {name: self.table(name) for name in TABLES}

    def table(self, name: str) -> dict[str, bytes]:
        return {bytes(k).decode(): bytes(v) for k, v in self._txn.cursor(db=self._store._db[name])}

    def prefixed(self, table: str, prefix: str) -> dict[str, bytes]:
        """The raw values of ``table`` whose keys start with ``prefix``."""
        start = prefix.encode()
        out: dict[str, bytes] = {}
        cursor = self._txn.cursor(db=self._store._db[table])
        if cursor.set_range(start):
            for k, v in cursor:
                if not bytes(k).startswith(start):
                    break
                out[bytes(k).decode()] = bytes(v)
        return out

    def changed_since(self, version: int) -> RawChanges | None:
        """Every key written or deleted after ``version``, with its raw value (None: deleted);
        None when the log does not reach back to ``version`` (then read everything)."""
        store = self._store
        since = self._txn.get(LOG_SINCE_KEY, db=store._meta)
        if since is None or int.from_bytes(since, "big") > version + 1:
            return None
        out: RawChanges = {name: {} for name in TABLES}
        cursor = self._txn.cursor(db=store._log)
        # A version the log does not explain (its newest entry is older than the store's version:
        # a store written behind the writer's back, or damaged and bumped) is read whole, so
        # whatever is wrong with it is met and reported rather than skipped.
        if self.version > version and (
            not cursor.last() or int.from_bytes(bytes(cursor.key())[:8], "big") < self.version
        ):
            return None
        if not cursor.set_range((version + 1).to_bytes(8, "big")):
            return out
        for k in cursor.iternext(keys=True, values=False):
            table, _, key = bytes(k)[8:].decode().partition("\0")
            if table in out:
                raw = self._txn.get(key.encode(), db=store._db[table])
                out[table][key] = bytes(raw) if raw is not None else None
        return out


class StoreChanged(Exception):
    """The store is not at the version a writer based its change on: someone else wrote it."""

    def __init__(self, current: int, base: int) -> None:
        super().__init__(f"the store is at version {current}, not at {base} as expected")
        self.current, self.base = current, base


class SnapshotWriter(_Store):
    """The single writer of a data dir's store."""

    def __init__(self, data_dir: Path, map_size: int = DEFAULT_MAP_SIZE, *, log_floor: int = LOG_FLOOR) -> None:
        self.log_floor = log_floor
        self._open_env(data_dir, readonly=False, map_size=map_size)
        self._open_tables(create=True)
        with self.env.begin(write=True) as txn:
            if txn.get(LOG_SINCE_KEY, db=self._meta) is None:
                raw = txn.get(VERSION_KEY, db=self._meta)
                first = (int.from_bytes(raw, "big") if raw else 0) + 1
                txn.put(LOG_SINCE_KEY, first.to_bytes(8, "big"), db=self._meta)

    def publish(self, change: ChangeSet, version: int | None = None, *, base: int | None = None) -> int:
        """Write ``change`` in one transaction under a new version and return it.

        ``version`` (used by ``sync``, and by a control plane continuing above versions other
        hosts have seen) must be newer than the stored one; a version that would go backwards is
        refused with ValueError and nothing is written. ``base``: the version ``change`` was
        computed against; if the store holds another one (another writer), StoreChanged is
        raised inside the write transaction and nothing is written.
        """
        self.check()
        with self.env.begin(write=True) as txn:
            raw = txn.get(VERSION_KEY, db=self._meta)
            current = int.from_bytes(raw, "big") if raw else 0
            if base is not None and current != base:
                raise StoreChanged(current, base)
            new = current + 1 if version is None else version
            if new <= current:
                raise ValueError(f"version {new} is not newer than {current}")
            written = []
            for table, items in change.tables():
                db = self._db[table]
                for key, value in items.items():
                    if value is None:
                        txn.delete(key.encode(), db=db)
                    else:
                        txn.put(key.encode(), encode(stamped(table, value, new)), db=db)
                    written.append((table, key))
            written += self._restamp(txn, change, new)
            for table, key in written:
                self._logged(txn, table, key, new)
            self._prune(txn)
            txn.put(VERSION_KEY, new.to_bytes(8, "big"), db=self._meta)
        return new

    def _restamp(self, txn: lmdb.Transaction[bytes], change: ChangeSet, version: int) -> list[tuple[str, str]]:
        """Stamp ``version`` on the environments whose flags ``change`` writes (and not they
        themselves): an environment's stamp is the last version that changed anything it serves."""
        db = self._db["environments"]
        out = []
        for env_id in sorted({flag_environment(k) for k in change.flags} - change.environments.keys()):
            raw = txn.get(env_id.encode(), db=db)
            if raw is None:
                continue
            try:
                value = decode(raw)
            except CorruptValue:
                continue  # left as it is: readers report it
            txn.put(env_id.encode(), encode(stamped("environments", value, version)), db=db)
            out.append(("environments", env_id))
        return out

    def _logged(self, txn: lmdb.Transaction[bytes], table: str, key: str, version: int) -> None:
        """Log that ``version`` wrote ``table/key``, replacing the key's older log entry."""
        ident = table.encode() + b"\0" + key.encode()
        at = version.to_bytes(8, "big")
        before = txn.get(ident, db=self._changed_at)
        if before is not None:
            txn.delete(bytes(before) + ident, db=self._log)
        txn.put(at + ident, b"", db=self._log)
        txn.put(ident, at, db=self._changed_at)

    def _prune(self, txn: lmdb.Transaction[bytes]) -> None:
        """Drop the oldest versions' log entries while the log holds more entries than the store
        holds values (and more than ``log_floor``), and move ``log-since`` past them. Whole
        versions go, never the newest: ``log-since`` says from which version on the log is
        complete, and a reader at or above the version before it still reads only the delta."""
        count = int(txn.stat(self._log)["entries"])
        limit = max(self.log_floor, sum(int(txn.stat(self._db[t])["entries"]) for t in TABLES))
        cursor = txn.cursor(db=self._log)
        if count <= limit or not cursor.last():
            return
        newest = bytes(cursor.key())[:8]
        cursor.first()
        pruned: bytes | None = None
        key = bytes(cursor.key())
        while count > limit and key and key[:8] < newest:
            at = key[:8]
            while key[:8] == at:
                # The key's only log entry (a rewrite replaces it), so its pointer goes too.
                txn.delete(key[8:], db=self._changed_at)
                cursor.delete()
                count -= 1
                key = bytes(cursor.key())
            pruned = at
        if pruned is not None:
            txn.put(LOG_SINCE_KEY, (int.from_bytes(pruned, "big") + 1).to_bytes(8, "big"), db=self._meta)


class SnapshotReader(_Store):
    """Read-only access for edge workers; open it after the fork (in the app lifespan)."""

    def __init__(self, data_dir: Path, map_size: int = DEFAULT_MAP_SIZE) -> None:
        self._open_env(data_dir, readonly=True, map_size=map_size)
        try:
            self._open_tables(create=False)
        except BaseException:
            self.env.close()
            raise
        self._owns_env = True

    @classmethod
    def over(cls, writer: SnapshotWriter) -> SnapshotReader:
        """A reader over ``writer``'s open environment, for a writer and readers in one process
        (py-lmdb opens an environment once per process); closing it leaves the writer's open."""
        reader = cls.__new__(cls)
        reader.env = writer.env
        reader.data_dir, reader._inode = writer.data_dir, writer._inode
        reader._open_tables(create=False)
        reader._owns_env = False
        return reader

    def close(self) -> None:
        if self._owns_env:
            self.env.close()

    def remapped(self) -> SnapshotReader:
        """This store closed and opened anew, so that its map holds only what is read from now on
        (mapped pages count in the process's RSS); itself when it shares a writer's environment
        (:meth:`over`: one map per process). :class:`StoreDamaged` (a :class:`lmdb.Error`) when
        it cannot be opened again."""
        if not self._owns_env:
            return self
        self.close()
        return SnapshotReader(self.data_dir)

    def _begin(self) -> lmdb.Transaction[bytes]:
        self.check()
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
