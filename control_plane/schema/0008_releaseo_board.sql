-- Releaseo's board: feature requests (moderated), their votes and comments, categories, the
-- roadmap with follows, changelog entries with audiences, and the SDK users that identify and
-- product events describe. Public writes arrive through the intake (server/releaseo.py →
-- control_plane/releaseo_intake.py); ids of submissions and comments are minted by the edge.

CREATE TABLE releaseo_categories (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    position INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (project_id, name)
);

-- kind: feature_request (public board) or another kind a dashboard records (bug, idea);
-- review_status: pending (new public submissions, hidden), approved (public), rejected.
CREATE TABLE releaseo_feature_requests (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    kind TEXT NOT NULL DEFAULT 'feature_request',
    review_status TEXT NOT NULL DEFAULT 'pending',
    status TEXT NOT NULL DEFAULT 'open',
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    category_id TEXT REFERENCES releaseo_categories(id) ON DELETE SET NULL,
    author_user_id TEXT,
    author_name TEXT,
    source TEXT NOT NULL,
    vote_count INTEGER NOT NULL DEFAULT 0,
    comment_count INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    reviewed_at TEXT,
    reviewed_by TEXT
);
CREATE INDEX releaseo_feature_requests_project ON releaseo_feature_requests(project_id, seq);

-- One row per (request, end user): the vote as last set. `at` is when the edge received the
-- write; an older write arriving later (another edge worker's spool) does not override a newer one.
CREATE TABLE releaseo_votes (
    request_id TEXT NOT NULL REFERENCES releaseo_feature_requests(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    voted INTEGER NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (request_id, user_id)
);

CREATE TABLE releaseo_comments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    request_id TEXT NOT NULL REFERENCES releaseo_feature_requests(id) ON DELETE CASCADE,
    user_id TEXT,
    author_name TEXT,
    body TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX releaseo_comments_request ON releaseo_comments(request_id, seq);

-- visibility: public, internal_only (never published), audience_targeted (audience below).
-- audience: {"mode": "segment"|"condition", "segmentId"?, "segmentVersion"?, "definition"} as
-- stored when set (a segment's published snapshot is copied, so later edits do not move it).
CREATE TABLE releaseo_roadmap_items (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'planned',
    visibility TEXT NOT NULL DEFAULT 'public',
    audience TEXT,
    position INTEGER NOT NULL DEFAULT 0,
    feature_request_id TEXT REFERENCES releaseo_feature_requests(id) ON DELETE SET NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX releaseo_roadmap_items_project ON releaseo_roadmap_items(project_id, position);

CREATE TABLE releaseo_roadmap_follows (
    item_id TEXT NOT NULL REFERENCES releaseo_roadmap_items(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    following INTEGER NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (item_id, user_id)
);

-- audience: NULL for all users, else as on roadmap items (mode segment or condition).
-- status: draft (never public) or published.
CREATE TABLE releaseo_changelog_entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    body TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'draft',
    audience TEXT,
    published_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX releaseo_changelog_project ON releaseo_changelog_entries(project_id, seq);

-- End users of a project's SDK (identify and product events); properties merged by identify.
CREATE TABLE releaseo_sdk_users (
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    properties TEXT NOT NULL DEFAULT '{}',
    first_seen_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    identify_count INTEGER NOT NULL DEFAULT 0,
    event_count INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX releaseo_sdk_users_seen ON releaseo_sdk_users(project_id, last_seen_at);

-- Published segment versions outlive their segment (a changelog entry may have copied one, and
-- an audit needs to read what was targeted): rebuilt without the cascade from releaseo_segments,
-- scoped by project instead.
CREATE TABLE releaseo_segment_versions_kept (
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    segment_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    definition TEXT NOT NULL,
    published_at TEXT NOT NULL,
    published_by TEXT NOT NULL,
    PRIMARY KEY (segment_id, version)
);
INSERT INTO releaseo_segment_versions_kept
    (project_id, segment_id, version, name, description, definition, published_at, published_by)
    SELECT s.project_id, v.segment_id, v.version, v.name, v.description, v.definition, v.published_at, v.published_by
    FROM releaseo_segment_versions v JOIN releaseo_segments s ON s.id = v.segment_id;
DROP TABLE releaseo_segment_versions;
ALTER TABLE releaseo_segment_versions_kept RENAME TO releaseo_segment_versions;
CREATE INDEX releaseo_segment_versions_project ON releaseo_segment_versions(project_id, segment_id);
