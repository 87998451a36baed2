"""``python -m control_plane backup`` / ``restore``: the source of truth, copied consistently.

The backup holds the SQLite store (SQLite's online backup API, so it is consistent while the
control plane runs and writes) and the JWT signing secret. LMDB snapshots are derived data: a
restored control plane rebuilds and republishes them on start, so they are not copied.

Versions never go backwards (edges and ``sync`` hosts ignore versions older than the one they
hold), so the backup also records the snapshot version the data dir had reached (read after the
SQLite copy, so it is at least the version of every change in the backup), and ``restore``
leaves it in the new data dir as its *version floor* (:func:`version_floor`): the restored
control plane publishes above it (and above what Redis announces, which the publisher reads on
start), as a full state, since other hosts hold states the restored store never had.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

from contract.store import SnapshotReader, snapshot_dir
from control_plane.settings import JWT_SECRET_FILE, KEY_ENCRYPTION_SECRET_FILE
from control_plane.store import now_iso

DB_NAME = "control_plane.sqlite3"
# The JWT signing secret and the key-encryption secret (without which SDK keys kept encrypted
# cannot be read back).
SECRET_NAMES = (JWT_SECRET_FILE, KEY_ENCRYPTION_SECRET_FILE)
MANIFEST = "backup.json"
#: In a restored data dir: the newest snapshot version the backed-up data dir had published.
VERSION_FLOOR = "version_floor"


class BackupError(RuntimeError):
    pass


def _copy_secret(src: Path, dst: Path) -> None:
    if src.exists():
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(src.read_text())


def backup(data_dir: Path, out: Path) -> Path:
    source = data_dir / DB_NAME
    if not source.exists():
        raise BackupError(f"no control-plane store at {source}")
    if out.exists() and any(out.iterdir()):
        raise BackupError(f"{out} is not empty")
    out.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(source)
    dst = sqlite3.connect(out / DB_NAME)
    try:
        src.backup(dst)
        check = dst.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        dst.close()
        src.close()
    if check != "ok":
        raise BackupError(f"backup failed its integrity check: {check}")
    for name in SECRET_NAMES:
        _copy_secret(data_dir / name, out / name)
    manifest = {"created_at": now_iso(), "source": str(data_dir), "format": 1, "version": _published_version(data_dir)}
    (out / MANIFEST).write_text(json.dumps(manifest))
    return out


def _published_version(data_dir: Path) -> int:
    """The snapshot version ``data_dir``'s LMDB holds (0 if it has none)."""
    if not (snapshot_dir(data_dir) / "data.mdb").exists():
        return 0
    reader = SnapshotReader(data_dir)
    try:
        return reader.version()
    finally:
        reader.close()


def version_floor(data_dir: Path) -> int:
    """The version a restored data dir's first publish must go above (0: not restored)."""
    try:
        return int((data_dir / VERSION_FLOOR).read_text())
    except (FileNotFoundError, ValueError):
        return 0


def restore(backup_dir: Path, data_dir: Path) -> Path:
    if not (backup_dir / MANIFEST).exists() or not (backup_dir / DB_NAME).exists():
        raise BackupError(f"{backup_dir} is not a control-plane backup")
    if data_dir.exists() and any(data_dir.iterdir()):
        raise BackupError(f"{data_dir} is not empty: restore into a new data directory")
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        manifest = json.loads((backup_dir / MANIFEST).read_text())
        floor = int(manifest.get("version", 0))
    except (ValueError, TypeError, AttributeError) as e:
        raise BackupError(f"{backup_dir / MANIFEST} is unreadable: {e}") from e
    shutil.copyfile(backup_dir / DB_NAME, data_dir / DB_NAME)
    for name in SECRET_NAMES:
        _copy_secret(backup_dir / name, data_dir / name)
    (data_dir / VERSION_FLOOR).write_text(f"{floor}\n")
    return data_dir
