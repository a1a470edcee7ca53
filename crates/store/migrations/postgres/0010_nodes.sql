-- Gateway nodes sharing this store: each writes its row at start and every few seconds
-- (its version, start time and the configuration revision it serves).
CREATE TABLE nodes (
    name         TEXT PRIMARY KEY,
    version      TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    revision     BIGINT NOT NULL
);
