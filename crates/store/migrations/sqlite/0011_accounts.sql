-- People who sign in to the dashboard, each with a role (viewer, editor, admin, owner).
-- Passwords are argon2id hashes (PHC strings).
CREATE TABLE users (
    email         TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    disabled_at   TEXT
);

-- Developer portal accounts: the password of a developer; the developer itself is
-- configuration (the `developers` collection).
CREATE TABLE portal_accounts (
    email         TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL
);

-- Signed-in browser sessions, by realm (`dashboard` or `portal`). Only a SHA-256 hash of
-- the session cookie is kept. Times are Unix seconds.
CREATE TABLE web_sessions (
    id_hash    TEXT PRIMARY KEY,
    realm      TEXT NOT NULL,
    subject    TEXT NOT NULL,
    csrf       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX web_sessions_subject ON web_sessions (realm, subject);

-- Password reset tokens (hashed), usable once before they expire.
CREATE TABLE password_resets (
    token_hash TEXT PRIMARY KEY,
    realm      TEXT NOT NULL,
    email      TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
