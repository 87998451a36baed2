-- shareyourthoughtswith.me (/api/v1): posts with immutable versions, feedback, telemetry, and the
-- keys that open the API. Those keys are rows of api_keys like the admin API's: one table, one
-- hash, one revocation; `api` says which API a key opens ('admin': fe_ keys, 'sytwm': sytwm_ keys)
-- and a key never opens the other.
ALTER TABLE api_keys ADD COLUMN api TEXT NOT NULL DEFAULT 'admin' CHECK (api IN ('admin', 'sytwm'));
CREATE INDEX api_keys_organisation ON api_keys(organisation_id, api);

-- A post is a slug in an organisation; what it asks lives in its versions. Editing adds a version,
-- publishing points published_version at one (NULL: not published), so feedback given to an old
-- version keeps the steps (and labels) it answered.
CREATE TABLE sytwm_posts (
    id TEXT PRIMARY KEY,
    organisation_id TEXT NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    slug TEXT NOT NULL,
    published_version INTEGER,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (organisation_id, slug)
);

CREATE TABLE sytwm_post_versions (
    post_id TEXT NOT NULL REFERENCES sytwm_posts(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    title TEXT NOT NULL,
    definition TEXT NOT NULL,   -- JSON: {"steps": [{"id", "label", "kind", ...}]}
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (post_id, version)
);

-- seq orders feedback by arrival and is what list cursors point at (newest first: seq < cursor),
-- so entries that arrive while a client pages never shift the pages it has not read yet.
-- UNIQUE (api_key_id, client_dedup_id) makes a retried submission one entry however many
-- copies race (NULLs are distinct: submissions without a dedup id never collide). api_key_id has
-- no foreign key: deleting the user who made a key must not delete what the key collected.
CREATE TABLE sytwm_feedback (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    organisation_id TEXT NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    post_id TEXT NOT NULL REFERENCES sytwm_posts(id) ON DELETE CASCADE,
    post_version INTEGER NOT NULL,
    api_key_id TEXT NOT NULL,
    client_dedup_id TEXT,
    answers TEXT NOT NULL,      -- JSON: [{"step_id", "answer"}]
    is_public INTEGER NOT NULL,
    is_hidden INTEGER NOT NULL DEFAULT 0,
    public_text TEXT,
    submitter_label TEXT,
    submitted_at TEXT NOT NULL,
    UNIQUE (api_key_id, client_dedup_id)
);
CREATE INDEX sytwm_feedback_organisation ON sytwm_feedback(organisation_id, seq);

CREATE TABLE sytwm_telemetry (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    organisation_id TEXT NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    api_key_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    post_slug TEXT,
    step_id TEXT,
    session_id TEXT,
    path TEXT,
    referrer TEXT,
    payload TEXT,               -- JSON object or NULL
    received_at TEXT NOT NULL
);
CREATE INDEX sytwm_telemetry_organisation ON sytwm_telemetry(organisation_id, id);
