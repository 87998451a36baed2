-- Airborne resources of an application (= project): versioned files, packages of files,
-- dimensions (standard and cohort, with checkpoints and groups), app configs and releases.

-- One row per file version. `version` counts up per (project, file_path); a tag names at most
-- one version of a path. `size` 0 / `checksum` '' mean the file is still "pending".
CREATE TABLE IF NOT EXISTS ab_files (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    file_path TEXT NOT NULL,
    version INTEGER NOT NULL,
    url TEXT NOT NULL,
    tag TEXT NOT NULL,
    size INTEGER NOT NULL DEFAULT 0,
    checksum TEXT NOT NULL DEFAULT '',
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    UNIQUE (project_id, file_path, version),
    UNIQUE (project_id, file_path, tag)
);
CREATE INDEX IF NOT EXISTS ab_files_created ON ab_files(project_id, created_at);

-- `index_file` and `files` hold resolved file keys (`path@version:N`; `files` is a JSON list).
CREATE TABLE IF NOT EXISTS ab_packages (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    tag TEXT NOT NULL,
    index_file TEXT NOT NULL,
    files TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL,
    UNIQUE (project_id, version)
);
CREATE INDEX IF NOT EXISTS ab_packages_tag ON ab_packages(project_id, tag, version);

-- Positions are 1..n without gaps within a project.
CREATE TABLE IF NOT EXISTS ab_dimensions (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    position INTEGER NOT NULL,
    dimension_type TEXT NOT NULL CHECK (dimension_type IN ('standard', 'cohort')),
    schema TEXT NOT NULL DEFAULT '{}',
    depends_on TEXT,
    mandatory INTEGER NOT NULL DEFAULT 0,
    change_reason TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (project_id, name)
);

-- Cohorts of a cohort dimension: checkpoints (comparator + value) and groups (members + priority,
-- 0 = evaluated first).
CREATE TABLE IF NOT EXISTS ab_cohorts (
    id TEXT PRIMARY KEY,
    dimension_id TEXT NOT NULL REFERENCES ab_dimensions(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('checkpoint', 'group')),
    comparator TEXT,
    value TEXT,
    members TEXT,
    priority INTEGER,
    created_at TEXT NOT NULL,
    UNIQUE (dimension_id, name)
);

CREATE TABLE IF NOT EXISTS ab_configs (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    config_version TEXT NOT NULL,
    boot_timeout INTEGER NOT NULL,
    package_timeout INTEGER NOT NULL,
    properties TEXT NOT NULL DEFAULT '{}',
    tenant_info TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    UNIQUE (project_id, number)
);

-- A release is an experiment (control = what serves its dimension context today, experimental =
-- this release). `config`, `package`, `resources` are JSON with the resolved file records;
-- `dimensions_key` is the canonical JSON of `dimensions` (sorted keys) for exact-context look-ups.
CREATE TABLE IF NOT EXISTS ab_releases (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    package_version INTEGER NOT NULL,
    config TEXT NOT NULL,
    package TEXT NOT NULL,
    resources TEXT NOT NULL DEFAULT '[]',
    dimensions TEXT NOT NULL DEFAULT '{}',
    dimensions_key TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL CHECK (status IN ('CREATED', 'INPROGRESS', 'CONCLUDED', 'DISCARDED')),
    traffic_percentage INTEGER NOT NULL DEFAULT 0,
    chosen_variant TEXT, -- variant type of the winner: control or experimental
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    concluded_at TEXT,
    -- creation order, and conclusion order (the newest concluded experimental variant per
    -- dimension context is what serves that context)
    seq INTEGER NOT NULL,
    concluded_seq INTEGER
);
CREATE INDEX IF NOT EXISTS ab_releases_project ON ab_releases(project_id, seq);
CREATE INDEX IF NOT EXISTS ab_releases_context ON ab_releases(project_id, dimensions_key, status);
