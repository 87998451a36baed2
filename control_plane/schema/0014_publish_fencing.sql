-- Several control-plane replicas (control_plane/leadership.py, control_plane/replication.py).
-- Unused (empty) on SQLite, where the one process publishes every change itself.

-- One row (id = 1): the epoch (fencing token) of the newest publishing term. The replica that
-- takes the publish lock raises it by one and publishes under the new value: Redis refuses the
-- writes of every lower epoch, and the publish state records only the current epoch's progress.
CREATE TABLE publish_terms (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    epoch INTEGER NOT NULL,
    holder TEXT NOT NULL,
    started_at TEXT NOT NULL
);

-- The Airborne release data as last published (LMDB's `releases` table: each value exactly as
-- stored there, with the version that wrote it). Written by the publishing replica with its
-- publish state; the other replicas answer GET /release/{org}/{app} from here.
CREATE TABLE published_releases (
    release_key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    version INTEGER NOT NULL
);
