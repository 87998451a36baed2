"""Reading a control plane's store directly in tests, whichever database it is."""

from __future__ import annotations

import sqlite3

from control_plane.store import Store


def dump_text(store: Store) -> str:
    """Every row of every table as text (to check what is, and is not, stored)."""
    if not store.postgresql:
        with sqlite3.connect(store.path) as db:
            return "\n".join(db.iterdump())
    tables = [
        r[0]
        for r in store.all(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name"
        )
    ]
    return "\n".join(f"{t}: {tuple(row)!r}" for t in tables for row in store.all(f'SELECT * FROM "{t}"'))


def flush(store: Store) -> None:
    """Make what the store holds reach its files (SQLite: checkpoint the WAL into the database file)."""
    if not store.postgresql:
        with store.read() as db:
            db.execute("PRAGMA wal_checkpoint(FULL)")
