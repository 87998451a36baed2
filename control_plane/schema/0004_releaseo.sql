-- Releaseo: widget config per project (served by the edge at /sdk/config) and saved segments.

-- One row per project once a widget has been created. The public project key and the version
-- survive a removal (settings become NULL), so a re-created widget keeps its key and its version
-- keeps increasing: an ETag built from (projectKey, version) never repeats with other content.
CREATE TABLE IF NOT EXISTS releaseo_widgets (
    project_id TEXT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    project_key TEXT NOT NULL UNIQUE,
    settings TEXT,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- A segment's draft; `seq` orders the cursor-paginated list (newest first).
CREATE TABLE IF NOT EXISTS releaseo_segments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    definition TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (project_id, name)
);
CREATE INDEX IF NOT EXISTS releaseo_segments_project ON releaseo_segments(project_id, seq);

-- Immutable published snapshots of a segment: never updated, only added (and removed with the segment).
CREATE TABLE IF NOT EXISTS releaseo_segment_versions (
    segment_id TEXT NOT NULL REFERENCES releaseo_segments(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    definition TEXT NOT NULL,
    published_at TEXT NOT NULL,
    published_by TEXT NOT NULL,
    PRIMARY KEY (segment_id, version)
);
