-- Alerts raised by the detectors; an alert with `blocked_until` in the future blocks its
-- subject (a client address or an app) on every node.
CREATE TABLE alerts (
    id TEXT PRIMARY KEY,
    detector TEXT NOT NULL,
    subject_kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    api TEXT NOT NULL,
    observed BIGINT NOT NULL,
    threshold BIGINT NOT NULL,
    window_seconds BIGINT NOT NULL,
    blocked_until BIGINT,
    at BIGINT NOT NULL,
    node TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX alerts_at ON alerts (at);
CREATE INDEX alerts_blocked ON alerts (blocked_until);
