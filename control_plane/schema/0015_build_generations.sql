-- Per project, a number raised by every write transaction that changes what its environments'
-- snapshots are built from (control_plane/build_generations.py), in that transaction. A build a
-- control plane keeps to patch on the next write (control_plane/incremental.py) records the
-- generation it was built at: a write patches it only when the generation it raises came from
-- that one, so another replica's write on the same PostgreSQL (or a write a warm-up raced) makes
-- it build whole instead of patching a build of something the database no longer holds.
CREATE TABLE build_generations (
    project_id TEXT PRIMARY KEY,
    generation INTEGER NOT NULL
);
