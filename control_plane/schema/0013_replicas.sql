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

-- Rate limits and login budgets shared by every replica (control_plane/shared_limits.py; the
-- single SQLite process keeps them in memory). Times are seconds since the epoch.
CREATE TABLE rate_buckets (
    limiter TEXT NOT NULL,
    key TEXT NOT NULL,
    tokens REAL NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (limiter, key)
);

-- Login attempts per client address (kind 'address') and failures per account (kind 'account').
CREATE TABLE login_hits (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX login_hits_key ON login_hits(kind, key, at);

-- Per account and client address: failures and the backoff they earned.
CREATE TABLE login_backoff (
    account TEXT NOT NULL,
    address TEXT NOT NULL,
    failures INTEGER NOT NULL,
    last REAL NOT NULL,
    locked_until REAL NOT NULL,
    PRIMARY KEY (account, address)
);
