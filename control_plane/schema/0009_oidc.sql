-- OIDC login (Airborne's /users/oauth/*, control_plane/oidc.py).
--
-- A login in flight: written by GET /users/oauth/url, deleted by the first /users/oauth/login or
-- /users/oauth/signup that presents its state (so a state, and with it the code it came back
-- with, works once). Only the SHA-256 of the state is kept; the PKCE verifier and the nonce never
-- leave the control plane.
CREATE TABLE oauth_logins (
    state_hash TEXT PRIMARY KEY,
    nonce TEXT NOT NULL,
    code_verifier TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX oauth_logins_expiry ON oauth_logins(expires_at);

-- The account an identity provider's subject logs into (issuer + sub, as OIDC identifies a user).
CREATE TABLE oauth_identities (
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX oauth_identities_user ON oauth_identities(user_id);
