-- DevCycle change requests (approval workflow) and webhooks with their durable delivery outbox.
-- Ids are TEXT (store.new_id()); times are TEXT UTC ISO 8601; JSON columns are decoded in Python.

-- A proposed PATCH of a feature, kept as sent (path, method, body) and applied later through the
-- same write code a direct request runs. base_snapshot is the digest of the feature when the
-- request was created: apply refuses (409) if the feature changed since.
CREATE TABLE IF NOT EXISTS change_requests (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    feature_id TEXT NOT NULL REFERENCES features(id) ON DELETE CASCADE,
    status TEXT NOT NULL CHECK (status IN ('draft', 'pending', 'approved', 'applied', 'rejected', 'cancelled')),
    operation TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    path TEXT NOT NULL,
    method TEXT NOT NULL,
    body TEXT NOT NULL,
    base_snapshot TEXT NOT NULL,
    -- JSON: user ids asked to review; the reviews given ({_createdBy, action, comment, createdAt}).
    reviewers TEXT NOT NULL DEFAULT '[]',
    reviews TEXT NOT NULL DEFAULT '[]',
    created_by TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS change_requests_feature ON change_requests(feature_id, created_at);
CREATE INDEX IF NOT EXISTS change_requests_project ON change_requests(project_id, created_at);

CREATE TABLE IF NOT EXISTS webhooks (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    url TEXT NOT NULL,
    -- JSON arrays: event names; environment ids (empty: every environment).
    events TEXT NOT NULL,
    environments TEXT NOT NULL DEFAULT '[]',
    -- Only events of this feature (id; its key kept too so a deletion still matches).
    feature_id TEXT,
    feature_key TEXT,
    output_format TEXT NOT NULL DEFAULT '{}',
    -- The HMAC-SHA256 key of the signature header; shown once, on create.
    secret TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT 'api',
    created_by TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS webhooks_project ON webhooks(project_id);

-- One row per (change, webhook), written in the transaction of the change: an acknowledged change
-- is a delivery that will be attempted. A deliverer claims a due row by setting claimed_until (a
-- lease, so several control planes on one database never send a row at the same time, and a row
-- claimed by a process that died is taken again once the lease ends). The id is the event id the
-- receiver sees (X-FlagEdge-Event-Id) on every attempt.
CREATE TABLE IF NOT EXISTS webhook_outbox (
    id TEXT PRIMARY KEY,
    webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL,
    events TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    claimed_until TEXT,
    last_status INTEGER,
    last_error TEXT,
    created_at TEXT NOT NULL,
    delivered_at TEXT
);
CREATE INDEX IF NOT EXISTS webhook_outbox_due ON webhook_outbox(status, next_attempt_at);
CREATE INDEX IF NOT EXISTS webhook_outbox_webhook ON webhook_outbox(webhook_id, created_at);

-- Delivery history: one row per HTTP attempt.
CREATE TABLE IF NOT EXISTS webhook_attempts (
    id TEXT PRIMARY KEY,
    outbox_id TEXT NOT NULL REFERENCES webhook_outbox(id) ON DELETE CASCADE,
    webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    at TEXT NOT NULL,
    status_code INTEGER,
    error TEXT,
    duration_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_attempts_webhook ON webhook_attempts(webhook_id, at);
