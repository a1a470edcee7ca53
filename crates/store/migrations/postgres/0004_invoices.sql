-- Invoices computed for a period; a re-run of the period replaces them.
CREATE TABLE invoices (
    id TEXT PRIMARY KEY,
    period TEXT NOT NULL,
    app TEXT NOT NULL,
    product TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX invoices_period ON invoices (period, app, product);
