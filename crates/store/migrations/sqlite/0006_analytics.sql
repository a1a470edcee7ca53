-- Analytics: each node's per-minute aggregates by API, version, route, app and status
-- class, with latency histograms (whole request, gateway time, upstream time) in their
-- text form.
-- Written as absolute values per node, so a retried flush never double counts.
CREATE TABLE analytics_minutes (
    node TEXT NOT NULL,
    minute BIGINT NOT NULL,
    api TEXT NOT NULL,
    version TEXT NOT NULL,
    route TEXT NOT NULL,
    app TEXT NOT NULL,
    class SMALLINT NOT NULL,
    requests BIGINT NOT NULL,
    total TEXT NOT NULL,
    gateway TEXT NOT NULL,
    upstream TEXT NOT NULL,
    PRIMARY KEY (node, minute, api, version, route, app, class)
);
CREATE INDEX analytics_minutes_time ON analytics_minutes (minute);
