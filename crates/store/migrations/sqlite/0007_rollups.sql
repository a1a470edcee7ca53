-- Analytics rolled up: per-minute rows older than the minute retention are moved into
-- hours (all nodes merged), hours older than the hour retention into days. A row is in
-- exactly one of the three tables at any time, so a read of all three counts it once.
CREATE TABLE analytics_hours (
    start BIGINT NOT NULL,
    api TEXT NOT NULL,
    version TEXT NOT NULL,
    route TEXT NOT NULL,
    app TEXT NOT NULL,
    class SMALLINT NOT NULL,
    requests BIGINT NOT NULL,
    total TEXT NOT NULL,
    gateway TEXT NOT NULL,
    upstream TEXT NOT NULL,
    PRIMARY KEY (start, api, version, route, app, class)
);
CREATE TABLE analytics_days (
    start BIGINT NOT NULL,
    api TEXT NOT NULL,
    version TEXT NOT NULL,
    route TEXT NOT NULL,
    app TEXT NOT NULL,
    class SMALLINT NOT NULL,
    requests BIGINT NOT NULL,
    total TEXT NOT NULL,
    gateway TEXT NOT NULL,
    upstream TEXT NOT NULL,
    PRIMARY KEY (start, api, version, route, app, class)
);
