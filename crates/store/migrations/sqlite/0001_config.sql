-- Configuration entities, the global revision and the change log.
CREATE TABLE tollgate_meta (
    key   TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO tollgate_meta (key, value) VALUES ('revision', 0);

CREATE TABLE entities (
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    body       TEXT NOT NULL,
    revision   BIGINT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (kind, name)
);

CREATE TABLE change_log (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    revision BIGINT NOT NULL,
    kind     TEXT NOT NULL,
    name     TEXT NOT NULL,
    op       TEXT NOT NULL,
    actor    TEXT NOT NULL,
    at       TEXT NOT NULL
);
CREATE INDEX change_log_revision ON change_log (revision);

-- Admin API tokens: only a SHA-256 of the secret is kept.
CREATE TABLE admin_tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    role        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT,
    revoked_at  TEXT
);
