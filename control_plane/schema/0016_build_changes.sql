-- Per project and build generation (0015), what the write that raised it changed: the features
-- (a JSON array) or NULL for the project as a whole (control_plane/build_changes.py), written in
-- that write's transaction. A replica whose kept build is older than the generation before its
-- write's (another replica wrote meanwhile) patches it with the union of the rows in between
-- instead of building the project whole. Rows go after a few minutes (`at`: seconds since the
-- epoch); a missing one makes that replica build whole, as before.
CREATE TABLE build_changes (
    project_id TEXT NOT NULL,
    generation INTEGER NOT NULL,
    features TEXT,
    at REAL NOT NULL,
    PRIMARY KEY (project_id, generation)
);
CREATE INDEX build_changes_at ON build_changes(at);
