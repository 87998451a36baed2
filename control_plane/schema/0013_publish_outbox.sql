-- Several control-plane replicas on one PostgreSQL (control_plane/replication.py): every write
-- that changes what edges serve appends the projects it touched to the outbox, in the
-- transaction of the change. Writes are serialized (an advisory lock held from BEGIN to COMMIT),
-- so `seq` grows in commit order. The one replica that publishes drains the outbox in `seq`
-- order and records how far it got and the snapshot version that holds it. Unused (empty) on
-- SQLite, where the one process publishes every change itself.
CREATE TABLE publish_outbox (
    seq INTEGER PRIMARY KEY,
    projects TEXT NOT NULL,        -- JSON array of project ids
    committed_at TEXT NOT NULL
);

-- One row (id = 1): the last outbox seq published, the version that holds it (the publishers'
-- version high-water mark: a new publisher goes above it), which replica published it, when.
CREATE TABLE publish_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    version INTEGER NOT NULL,
    publisher TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
