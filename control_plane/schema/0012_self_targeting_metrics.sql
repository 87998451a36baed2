-- DevCycle self-targeting (user profiles, overrides), metrics and evaluation counts (issue 18).

-- A dashboard user's DevCycle identity in a project: the SDK user id their overrides apply to.
-- One user id per project belongs to one dashboard user (a second claim is a 409).
CREATE TABLE user_profiles (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    dvc_user_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (project_id, user_id)
);
CREATE UNIQUE INDEX user_profiles_dvc_user ON user_profiles(project_id, dvc_user_id);

-- A dashboard user's override of a feature's variation in one environment (self-targeting).
-- Published in the environment's snapshot for the user's profile's dvc_user_id.
CREATE TABLE feature_overrides (
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    environment_id TEXT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    feature_id TEXT NOT NULL REFERENCES features(id) ON DELETE CASCADE,
    variation_id TEXT NOT NULL REFERENCES variations(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (user_id, environment_id, feature_id)
);
CREATE INDEX feature_overrides_environment ON feature_overrides(environment_id);
CREATE INDEX feature_overrides_feature ON feature_overrides(feature_id);

CREATE TABLE metrics (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    event TEXT NOT NULL,          -- the custom event type it measures (a DevCycle customType)
    dimension TEXT NOT NULL,      -- COUNT_PER_UNIQUE_USER, ..., TOTAL_SUM
    optimize TEXT NOT NULL,       -- increase | decrease
    source TEXT NOT NULL DEFAULT 'api',
    created_by TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (project_id, key)
);

CREATE TABLE metric_associations (
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    metric_id TEXT NOT NULL REFERENCES metrics(id) ON DELETE CASCADE,
    feature_id TEXT NOT NULL REFERENCES features(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (metric_id, feature_id)
);

-- Evaluations per environment, feature, variation, hour and SDK key kind: the edge's own counts
-- (intake records `evaluation-counts`) and DevCycle SDKs' evaluation events, added up by the
-- events consumer when it first stores their record (so a replayed record adds nothing).
-- Keys, not ids: counts outlive a renamed or deleted feature as the key it was evaluated under.
CREATE TABLE evaluation_counts (
    environment_id TEXT NOT NULL,
    feature_key TEXT NOT NULL,
    variation_key TEXT NOT NULL,
    hour TEXT NOT NULL,           -- UTC, 'YYYY-MM-DDTHH:00:00.000Z'
    sdk_type TEXT NOT NULL,       -- client, server, mobile or api
    evaluations INTEGER NOT NULL,
    PRIMARY KEY (environment_id, feature_key, variation_key, hour, sdk_type)
);
CREATE INDEX evaluation_counts_hour ON evaluation_counts(environment_id, hour);
