"""``python -m control_plane backup`` / ``restore``: the source of truth, copied consistently.

The backup holds the SQLite store (SQLite's online backup API, so it is consistent while the
control plane runs and writes) and the JWT signing secret. LMDB snapshots are derived data: a
restored control plane rebuilds and republishes them on start, so they are not copied.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

from control_plane.store import now_iso

DB_NAME = "control_plane.sqlite3"
SECRET_NAME = "jwt_secret"
MANIFEST = "backup.json"


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
    _copy_secret(data_dir / SECRET_NAME, out / SECRET_NAME)
    (out / MANIFEST).write_text(json.dumps({"created_at": now_iso(), "source": str(data_dir), "format": 1}))
    return out


def restore(backup_dir: Path, data_dir: Path) -> Path:
    if not (backup_dir / MANIFEST).exists() or not (backup_dir / DB_NAME).exists():
        raise BackupError(f"{backup_dir} is not a control-plane backup")
    if data_dir.exists() and any(data_dir.iterdir()):
        raise BackupError(f"{data_dir} is not empty: restore into a new data directory")
    data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(backup_dir / DB_NAME, data_dir / DB_NAME)
    _copy_secret(backup_dir / SECRET_NAME, data_dir / SECRET_NAME)
    return data_dir
