"""contract.store: the LMDB layout, atomic versioned change sets and the version-stamp rule."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from contract.framing import CorruptValue, decode, encode
from contract.store import (
    CHANGED_AT,
    CHANGELOG,
    META,
    TABLES,
    ChangeSet,
    SnapshotReader,
    SnapshotWriter,
    StoreDamaged,
    StoreReplaced,
    data_file,
    data_file_meta,
    flag_environment,
    flag_key,
    inspect_data_file,
    iter_decoded,
    open_env,
    stamped,
    unstamped,
)


def test_tables_are_the_change_set_fields_in_order() -> None:
    assert TABLES == ("environments", "sdk_keys", "releases", "widgets", "boards", "flags")
    change = ChangeSet(widgets={"w": {"a": 1}})
    assert [name for name, _ in change.tables()] == list(TABLES)
    assert change.table("widgets") == {"w": {"a": 1}}
    with pytest.raises(KeyError):
        change.table(META)


def test_update_size_and_emptiness() -> None:
    change = ChangeSet()
    assert change.is_empty() and change.size() == 0
    change.update(ChangeSet(environments={"e": {"d": 1}}, sdk_keys={"k": None}))
    change.update(ChangeSet(environments={"e2": {"d": 2}}))
    assert not change.is_empty()
    assert change.size() == 3


def test_only_environments_and_boards_are_stamped() -> None:
    assert stamped("environments", {"document": 1}, 7) == {"document": 1, "version": 7}
    assert stamped("boards", {"requests": []}, 7) == {"requests": [], "version": 7}
    assert unstamped("boards", {"requests": [], "version": 7}) == {"requests": []}
    assert stamped("widgets", {"version": 3}, 7) == {"version": 3}
    assert unstamped("environments", {"document": 1, "version": 7}) == {"document": 1}
    assert unstamped("widgets", {"version": 3}) == {"version": 3}


def test_publish_is_atomic_versioned_and_never_goes_back(tmp_path: Path) -> None:
    writer = SnapshotWriter(tmp_path)
    try:
        assert writer.version() == 0
        v1 = writer.publish(ChangeSet(environments={"e": {"document": {}}}, widgets={"w": {"version": 9}}))
        assert v1 == 1
        v5 = writer.publish(ChangeSet(sdk_keys={"h": {"environment": "e", "kind": "client"}}), version=5)
        assert v5 == 5
        with pytest.raises(ValueError, match="not newer"):
            writer.publish(ChangeSet(widgets={"w": None}), version=5)
        version, tables = writer.read_all()
        assert version == 5
        assert set(tables) == set(TABLES)
        assert decode(tables["environments"]["e"]) == {"document": {}, "version": 1}
        assert decode(tables["widgets"]["w"]) == {"version": 9}  # not stamped
        writer.publish(ChangeSet(widgets={"w": None}))
        assert writer.read_all()[1]["widgets"] == {}
    finally:
        writer.close()


def test_reader_sees_what_the_writer_published(tmp_path: Path) -> None:
    writer = SnapshotWriter(tmp_path)
    writer.publish(ChangeSet(releases={"org/app": {"live": []}}))
    writer.close()
    reader = SnapshotReader(tmp_path)
    try:
        version, tables = reader.read_all()
        assert version == 1 == reader.version()
        assert decode(tables["releases"]["org/app"]) == {"live": []}
    finally:
        reader.close()


def test_get_reads_one_raw_value(tmp_path: Path) -> None:
    writer = SnapshotWriter(tmp_path)
    try:
        writer.publish(ChangeSet(releases={"Acme Mobile/shop-app": {"live": []}}))
        raw = writer.get("releases", "Acme Mobile/shop-app")
        assert raw is not None and decode(raw) == {"live": []}
        assert writer.get("releases", "Acme Mobile/other") is None
        assert writer.get("widgets", "Acme Mobile/shop-app") is None
    finally:
        writer.close()


def test_reader_over_a_writer_leaves_it_open(tmp_path: Path) -> None:
    writer = SnapshotWriter(tmp_path)
    try:
        reader = SnapshotReader.over(writer)
        writer.publish(ChangeSet(widgets={"w": {}}))
        assert reader.version() == 1
        reader.close()
        assert writer.publish(ChangeSet(widgets={"w": None})) == 2
    finally:
        writer.close()


def _resident_kb(path: Path) -> int:
    """Resident kB of this process's mappings of ``path`` (``/proc/self/smaps``)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 5 and "-" in fields[0] and len(fields[1]) == 4:  # a mapping's header
            inside = fields[-1] == str(path)
        elif inside and fields[:1] == ["Rss:"]:
            total += int(fields[1])
    return total


def test_a_remapped_reader_holds_none_of_the_pages_read_before(tmp_path: Path) -> None:
    # An edge worker reads the whole store once on start: the pages it read stay in its RSS for
    # as long as that map is open.
    writer = SnapshotWriter(tmp_path)
    writer.publish(ChangeSet(releases={f"org/app-{i}": {"live": ["x" * 1000]} for i in range(2000)}))
    writer.close()
    reader = SnapshotReader(tmp_path)
    try:
        _, tables = reader.read_all()
        assert len(tables["releases"]) == 2000
        read = _resident_kb(data_file(tmp_path))
        assert read > 1500
        old, reader = reader, reader.remapped()
        assert reader is not old and reader.inode == old.inode
        assert reader.version() == 1
        assert _resident_kb(data_file(tmp_path)) < read / 10
        assert decode(reader.read_all()[1]["releases"]["org/app-7"]) == {"live": ["x" * 1000]}
    finally:
        reader.close()


def test_a_reader_over_a_writer_is_not_remapped(tmp_path: Path) -> None:
    writer = SnapshotWriter(tmp_path)
    try:
        reader = SnapshotReader.over(writer)
        assert reader.remapped() is reader
        writer.publish(ChangeSet(widgets={"w": {}}))
        assert reader.version() == 1
    finally:
        writer.close()


def test_a_reader_does_not_create_the_store(tmp_path: Path) -> None:
    with pytest.raises(Exception):  # noqa: B017 - py-lmdb raises lmdb.Error subclasses by errno
        SnapshotReader(tmp_path / "missing")


def test_iter_decoded_reports_damaged_values(tmp_path: Path) -> None:
    env = open_env(tmp_path, readonly=False)
    env.close()
    decoded = dict(iter_decoded({"good": encode({"a": 1}), "bad": b"\x01\x00"}))
    assert decoded["good"] == {"a": 1}
    assert isinstance(decoded["bad"], CorruptValue)


def _grown(data: Path, publishes: int = 20) -> None:
    writer = SnapshotWriter(data)
    for i in range(publishes):
        writer.publish(ChangeSet(widgets={f"w{i}": {"blob": "x" * 5000}}))
    writer.close()


def test_a_truncated_file_is_refused_before_lmdb_maps_it(tmp_path: Path) -> None:
    _grown(tmp_path)
    meta = inspect_data_file(tmp_path)
    assert meta.size >= meta.needed and meta.page_size == 4096 and meta.txnid >= 20
    os.truncate(data_file(tmp_path), meta.needed - meta.page_size)
    with pytest.raises(StoreDamaged, match="truncated"):
        SnapshotReader(tmp_path)
    with pytest.raises(StoreDamaged, match="truncated"):
        SnapshotWriter(tmp_path)
    # The meta pages still say how far the store got (a floor for a rebuilt store's versions).
    assert data_file_meta(tmp_path).txnid == meta.txnid
    os.truncate(data_file(tmp_path), 100)
    with pytest.raises(StoreDamaged, match="meta page"):
        data_file_meta(tmp_path)


def test_an_open_reader_refuses_a_file_cut_or_replaced_under_it(tmp_path: Path) -> None:
    _grown(tmp_path)
    reader = SnapshotReader(tmp_path)
    try:
        assert reader.version() == 20
        saved = tmp_path / "saved.mdb"
        shutil.copy(data_file(tmp_path), saved)
        os.truncate(data_file(tmp_path), 8192)
        with pytest.raises(StoreDamaged, match="truncated"):
            reader.version()  # not a SIGBUS
        with pytest.raises(StoreDamaged, match="truncated"):
            reader.read_all()
        os.replace(saved, data_file(tmp_path))  # a new file (inode) at the path
        with pytest.raises(StoreReplaced):
            reader.version()
    finally:
        reader.close()


def _flag(key: str, order: str = "1") -> dict[str, object]:
    return {"project": "p", "order": order, "definition": {"key": key}}


def test_the_change_log_names_what_each_version_wrote_and_flags_restamp_their_environment(tmp_path: Path) -> None:
    writer = SnapshotWriter(tmp_path)
    try:
        env = {"project": "p", "environment": "prod", "document": {}}
        v1 = writer.publish(
            ChangeSet(environments={"e": env}, flags={flag_key("e", "a"): _flag("a"), flag_key("e", "b"): _flag("b")})
        )
        v2 = writer.publish(ChangeSet(flags={flag_key("e", "a"): _flag("a", "2")}))
        v3 = writer.publish(ChangeSet(flags={flag_key("e", "b"): None}, widgets={"w": {"x": 1}}))
        reader = SnapshotReader.over(writer)
        with reader.reading() as txn:
            assert txn.version == v3
            # The environment carries the version of the last change to it or its flags.
            assert decode(txn.table("environments")["e"])["version"] == v3
            since_v1 = txn.changed_since(v1)
            assert since_v1 is not None
            assert set(since_v1["flags"]) == {"e/a", "e/b"} and since_v1["flags"]["e/b"] is None
            assert decode(since_v1["flags"]["e/a"] or b"")["order"] == "2"
            assert set(since_v1["environments"]) == {"e"} and set(since_v1["widgets"]) == {"w"}
            since_v2 = txn.changed_since(v2)
            assert since_v2 is not None and set(since_v2["flags"]) == {"e/b"}
            assert txn.changed_since(v3) == {t: {} for t in TABLES}
            # A key written again leaves one log entry, at its newest version.
            assert txn.changed_since(0) is not None
            assert set(txn.prefixed("flags", "e/")) == {"e/a"}
        assert flag_environment("e/a/b") == "e"
    finally:
        writer.close()


def test_the_change_log_is_pruned_and_readers_behind_it_read_everything(tmp_path: Path) -> None:
    """Keys that come and go would leave a log entry each forever: the writer prunes the oldest
    versions once the log outgrows the store (here: its floor of 8 entries). A reader at a pruned
    version is told to read everything; one at a kept version reads exactly what changed."""
    writer = SnapshotWriter(tmp_path, log_floor=8)
    try:
        env = {"project": "p", "environment": "prod", "document": {}}
        first = writer.publish(ChangeSet(environments={"e": env}, flags={flag_key("e", "keep"): _flag("keep")}))
        wrote: dict[int, set[str]] = {first: {"e/keep"}}
        for i in range(40):
            key = flag_key("e", f"t{i}")
            wrote[writer.publish(ChangeSet(flags={key: _flag(f"t{i}")}))] = {key}
            wrote[writer.publish(ChangeSet(flags={key: None}))] = {key}
        last = max(wrote)
        log = writer.env.open_db(CHANGELOG.encode(), create=False)
        changed_at = writer.env.open_db(CHANGED_AT.encode(), create=False)
        with writer.env.begin() as txn:
            entries = txn.stat(log)["entries"]
            assert entries <= 8 + 2  # the floor, plus at most the newest version (a flag, its environment)
            assert txn.stat(changed_at)["entries"] == entries
        with SnapshotReader.over(writer).reading() as txn:
            usable = [v for v in range(last + 1) if txn.changed_since(v) is not None]
            # Every version from some point on reads as a delta; every older one reads whole.
            assert usable == list(range(usable[0], last + 1)) and first < usable[0] < last - 2
            for v in usable:
                since = txn.changed_since(v)
                assert since is not None
                assert set(since["flags"]) == set().union(*(keys for u, keys in wrote.items() if u > v))
                assert all(value is None for value in since["flags"].values())  # all deleted since
                assert set(since["environments"]) == ({"e"} if v < last else set())
    finally:
        writer.close()


def test_a_store_written_before_the_log_makes_readers_read_everything(tmp_path: Path) -> None:
    env = open_env(tmp_path, readonly=False)
    with env.begin(write=True) as txn:
        txn.put(b"version", (5).to_bytes(8, "big"), db=env.open_db(META.encode(), txn=txn))
    env.close()
    writer = SnapshotWriter(tmp_path)
    try:
        v6 = writer.publish(ChangeSet(widgets={"w": {"x": 1}}))
        with SnapshotReader.over(writer).reading() as txn:
            assert txn.changed_since(4) is None  # version 5 was written before the log started
            since = txn.changed_since(5)
            assert since is not None and set(since["widgets"]) == {"w"} and v6 == 6
    finally:
        writer.close()
