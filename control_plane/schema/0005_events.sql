-- SDK events the edge spooled (server/events.py) and the consumer moved here
-- (control_plane/events_consumer.py). Delivery is at least once; the edge-assigned `id` (a hash of
-- the client's dedup id, else a random UUID) makes a replayed event an ignored duplicate.
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL,   -- no foreign key: events outlive a deleted environment
    project_id TEXT,
    type TEXT NOT NULL,             -- feature-flag-event, user, company, event, feedback, prompt-event
    key_kind TEXT,                  -- SDK key kind that sent it: client, mobile or server
    user_id TEXT,
    company_id TEXT,
    name TEXT,                      -- flag key, event name or feature id, by type
    dedup_id TEXT,
    payload TEXT NOT NULL,          -- the validated event fields as JSON
    client_timestamp TEXT,
    received_at TEXT NOT NULL,      -- when the edge accepted it
    stored_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_environment ON events(environment_id, received_at);
CREATE INDEX IF NOT EXISTS events_environment_type ON events(environment_id, type, received_at);

-- How far the consumer got in each spool file, keyed by the id in the file's header line (it
-- survives the rename of a rotated file). Updated in the transaction that stores the events.
CREATE TABLE IF NOT EXISTS event_spool_offsets (
    file_id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    byte_offset INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
