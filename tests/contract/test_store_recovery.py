"""contract.store_recovery: a damaged store is moved aside with a version floor; a
readable one, or none, is left alone."""

from __future__ import annotations

import os
from pathlib import Path

from contract.store import ChangeSet, SnapshotWriter, data_file, snapshot_dir
from contract.store_recovery import recover_damaged_store
from control_plane.publisher import Publisher
from control_plane.store import Store


def _store(data: Path, publishes: int) -> None:
    writer = SnapshotWriter(data)
    for i in range(publishes):
        writer.publish(ChangeSet(widgets={f"w{i}": {"blob": "x" * 5000}}))
    writer.close()


def test_a_readable_or_absent_store_is_left_alone(tmp_path: Path) -> None:
    assert recover_damaged_store(tmp_path) == 0
    _store(tmp_path, 3)
    assert recover_damaged_store(tmp_path) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["snapshots"]


def test_a_truncated_store_is_moved_aside_and_versions_stay_above_it(tmp_path: Path) -> None:
    _store(tmp_path, 30)
    os.truncate(data_file(tmp_path), 8192)
    floor = recover_damaged_store(tmp_path)
    # meta/version is past the cut: the last transaction id (≥ every version published) is the floor.
    assert floor >= 30
    assert not snapshot_dir(tmp_path).exists()
    (aside,) = tmp_path.glob("snapshots.damaged-*")
    assert (aside / "data.mdb").stat().st_size == 8192
    # The rebuilt store's first publish goes above the floor, even with nothing to publish.
    store = Store(tmp_path / "flagedge.db")
    publisher = Publisher(tmp_path, store, floor=floor)
    try:
        assert publisher.republish_all() == floor + 1
        assert publisher.status()["ok"]
    finally:
        publisher.close()
        store.close()


def test_a_file_that_is_not_lmdb_is_moved_aside(tmp_path: Path) -> None:
    _store(tmp_path, 2)
    data_file(tmp_path).write_bytes(os.urandom(3 * 4096))
    assert recover_damaged_store(tmp_path) == 0
    assert len(list(tmp_path.glob("snapshots.damaged-*"))) == 1
