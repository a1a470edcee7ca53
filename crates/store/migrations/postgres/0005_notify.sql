-- Webhook deliveries: an outbox written with the event, delivered (and retried) by a
-- worker. `dedupe` makes raising the same event twice (a re-run, a second node) a no-op.
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    webhook TEXT NOT NULL,
    event TEXT NOT NULL,
    dedupe TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);

-- Notices for developers, shown in the portal (quota thresholds, credit, deprecations).
CREATE TABLE notices (
    id TEXT PRIMARY KEY,
    developer TEXT NOT NULL,
    app TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX notices_developer ON notices (developer, created_at);

-- Prepaid credit: top-ups (positive) and invoice debits (negative), per subscription.
-- An invoice's debit is replaced when its period is invoiced again.
CREATE TABLE credit_ledger (
    id TEXT PRIMARY KEY,
    subscription TEXT NOT NULL,
    period TEXT NOT NULL,
    kind TEXT NOT NULL,
    amount TEXT NOT NULL,
    note TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX credit_ledger_subscription ON credit_ledger (subscription, created_at);
