-- Console sessions. A browser that signed in holds a random token in an HttpOnly cookie;
-- only the token's SHA-256 is stored, with the API key it stands for and the hash of the
-- secret it was opened with. Authentication joins the key on every request, so the key's
-- state (revoked, frozen, expired, user deactivated) counts exactly as for a bearer key, and
-- a session opened with a secret that a rotation replaced ends with that secret's grace
-- period. In PostgreSQL, so every API replica knows every session.
CREATE TABLE console_sessions (
    token_hash  bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    org_id      text NOT NULL,
    api_key_id  text NOT NULL,
    secret_hash bytea NOT NULL CHECK (length(secret_hash) = 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    user_agent  text NOT NULL DEFAULT '' CHECK (length(user_agent) <= 512),
    FOREIGN KEY (org_id, api_key_id) REFERENCES api_keys (org_id, id),
    CHECK (expires_at > created_at AND expires_at <= created_at + interval '7 days')
);
CREATE INDEX console_sessions_expires_at ON console_sessions (expires_at);
CREATE INDEX console_sessions_api_key ON console_sessions (api_key_id);
