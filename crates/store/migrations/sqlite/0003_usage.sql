-- Metered usage for billing: each node's absolute count per subscription and minute.
CREATE TABLE usage_minutes (
    node TEXT NOT NULL,
    subscription TEXT NOT NULL,
    minute BIGINT NOT NULL,
    requests BIGINT NOT NULL,
    billable BIGINT NOT NULL,
    PRIMARY KEY (node, subscription, minute)
);
CREATE INDEX usage_minutes_subscription ON usage_minutes (subscription, minute);
