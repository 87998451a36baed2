"""Per-project build generations (migration 0015): which state of a project a kept build holds.

Every write transaction that validates a project's snapshots raises the project's generation by
one, in that transaction (:func:`advance`); writes are serialized (SQLite's ``BEGIN IMMEDIATE``,
PostgreSQL's ``store.WRITE_LOCK``), so the generation a write reads is the one every earlier
committed write of the project left. A build made at generation ``g`` (a write's, or a warm-up's
read in one snapshot, :func:`current`) is the database's state of the project as long as the
generation is still ``g``: a write that raises it to ``g + 1`` may patch that build, any other
number means a write the build did not see (another replica's, one that raced a warm-up), which
the build is caught up with only from what those writes recorded (``control_plane.build_changes``).
"""

from __future__ import annotations

from control_plane.dialect import Connection


def advance(db: Connection, project_id: str) -> int:
    """Inside a write transaction: raise the project's generation; the new one."""
    row = db.execute(
        "INSERT INTO build_generations (project_id, generation) VALUES (?, 1)"
        " ON CONFLICT (project_id) DO UPDATE SET generation = build_generations.generation + 1"
        " RETURNING generation",
        (project_id,),
    ).fetchone()
    return int(row[0])


def current(db: Connection, project_id: str) -> int:
    """The project's generation as ``db`` sees it (0: no write has raised it yet)."""
    row = db.execute("SELECT generation FROM build_generations WHERE project_id = ?", (project_id,)).fetchone()
    return int(row[0]) if row is not None else 0
