-- DevCycle management API, the rest of the list (issue 18): per-feature staleness settings
-- (snooze, disable, metadata; staleness itself is computed), SDK keys kept encrypted so admins
-- can read them back, Jira issue links on features, and the organisation's Dynatrace
-- environments (stored records: nothing calls out).

CREATE TABLE dv_feature_staleness (
    feature_id TEXT PRIMARY KEY REFERENCES features(id) ON DELETE CASCADE,
    disabled INTEGER NOT NULL DEFAULT 0,
    snoozed_until TEXT,
    meta_data TEXT NOT NULL DEFAULT '{}',
    updated_at TEXT NOT NULL
);

-- The full SDK key, AES-GCM under the key-encryption secret (control_plane.key_vault); keys
-- created before this migration have only their hash in sdk_keys and show redacted.
CREATE TABLE dv_sdk_key_secrets (
    key_hash TEXT PRIMARY KEY REFERENCES sdk_keys(key_hash) ON DELETE CASCADE,
    ciphertext TEXT NOT NULL
);

CREATE TABLE dv_jira_issues (
    feature_id TEXT NOT NULL REFERENCES features(id) ON DELETE CASCADE,
    issue_id TEXT NOT NULL,
    created_by TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    PRIMARY KEY (feature_id, issue_id)
);

-- access_token is encrypted like SDK keys (never stored in clear).
CREATE TABLE dv_dynatrace_environments (
    organisation_id TEXT NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    dynatrace_environment_id TEXT NOT NULL,
    access_token TEXT NOT NULL,
    environment_url TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (organisation_id, dynatrace_environment_id)
);
