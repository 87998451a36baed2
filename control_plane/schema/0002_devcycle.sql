-- The DevCycle view of the feature model: project/environment metadata, features, variations,
-- variables, per-environment configurations, audiences and custom properties.
-- JSON columns hold canonical (validated, normalised) documents; ids are 24 hex characters.

-- DevCycle fields of projects and environments that the core tables do not carry.
CREATE TABLE IF NOT EXISTS dv_project_meta (
    project_id TEXT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    color TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL DEFAULT ''
);

CREATE TABLE IF NOT EXISTS dv_environment_meta (
    environment_id TEXT PRIMARY KEY REFERENCES environments(id) ON DELETE CASCADE,
    created_by TEXT NOT NULL DEFAULT ''
);

CREATE TABLE IF NOT EXISTS features (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    type TEXT NOT NULL CHECK (type IN ('release', 'experiment', 'permission', 'ops')),
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'complete', 'archived')),
    tags TEXT NOT NULL DEFAULT '[]',
    -- Variation ids (rendered as keys).
    control_variation TEXT,
    static_variation TEXT,
    settings TEXT NOT NULL DEFAULT '{}',
    sdk_visibility TEXT NOT NULL DEFAULT '{}',
    summary TEXT NOT NULL DEFAULT '{}',
    created_by TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (project_id, key)
);

CREATE TABLE IF NOT EXISTS variations (
    id TEXT PRIMARY KEY,
    feature_id TEXT NOT NULL REFERENCES features(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    -- {variable key: value}
    variables TEXT NOT NULL DEFAULT '{}',
    UNIQUE (feature_id, key)
);
CREATE INDEX IF NOT EXISTS variations_feature ON variations(feature_id, position);

CREATE TABLE IF NOT EXISTS variables (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    feature_id TEXT REFERENCES features(id) ON DELETE SET NULL,
    key TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    type TEXT NOT NULL CHECK (type IN ('String', 'Boolean', 'Number', 'JSON')),
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
    validation_schema TEXT,
    persistent INTEGER NOT NULL DEFAULT 0,
    tags TEXT NOT NULL DEFAULT '[]',
    created_by TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (project_id, key)
);
CREATE INDEX IF NOT EXISTS variables_feature ON variables(feature_id);

-- One row per feature and environment once it has been configured; a missing row reads as
-- inactive, no targets, targetingVersion 0. `targets` is the DevCycle view; `reflag` holds
-- Reflag-format {"targeting": {"rules"}, "config"?: {"variants"}} when that format was sent.
CREATE TABLE IF NOT EXISTS feature_configurations (
    feature_id TEXT NOT NULL REFERENCES features(id) ON DELETE CASCADE,
    environment_id TEXT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    status TEXT NOT NULL DEFAULT 'inactive' CHECK (status IN ('active', 'inactive')),
    targets TEXT NOT NULL DEFAULT '[]',
    reflag TEXT,
    targeting_version INTEGER NOT NULL DEFAULT 0,
    started_at TEXT,
    created_by TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL,
    PRIMARY KEY (feature_id, environment_id)
);
CREATE INDEX IF NOT EXISTS feature_configurations_env ON feature_configurations(environment_id);

CREATE TABLE IF NOT EXISTS audiences (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    filters TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]',
    created_by TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (project_id, key)
);

CREATE TABLE IF NOT EXISTS custom_properties (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    property_key TEXT NOT NULL,
    type TEXT NOT NULL CHECK (type IN ('String', 'Boolean', 'Number')),
    schema TEXT,
    created_by TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (project_id, key),
    UNIQUE (project_id, property_key)
);
