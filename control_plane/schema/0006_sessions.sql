-- Login sessions: one per login (or sign-up). Access and refresh tokens carry the session id
-- (`sid`) and are refused once the session is revoked (logout, password change, reuse of a rotated
-- refresh token). Only the SHA-256 of the session's current refresh token is kept: each refresh
-- replaces it, so a rotated (older) refresh token no longer matches.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    refresh_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    refreshed_at TEXT,
    revoked_at TEXT,
    revoked_reason TEXT   -- logout, password_change, refresh_reuse
);
CREATE INDEX sessions_user ON sessions(user_id);
