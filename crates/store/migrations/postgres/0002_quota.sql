-- Quota counters: requests used per counter (a quota and a caller) and calendar period.
CREATE TABLE quota_usage (
    counter TEXT NOT NULL,
    period TEXT NOT NULL,
    used BIGINT NOT NULL,
    PRIMARY KEY (counter, period)
);
CREATE INDEX quota_usage_period ON quota_usage (period);
