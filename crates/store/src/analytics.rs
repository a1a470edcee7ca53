//! Analytics aggregates: each node's per-minute rows (absolute, so a retried flush never
//! double counts) and the reads the analytics queries merge.

use std::collections::BTreeMap;

use sqlx::Row;
use tollgate_insight::Histogram;

use crate::error::{Context, StoreError};
use crate::store::{Pool, Store, with_pool};

/// One minute of one key, from one node (`put`) or as stored (`read`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AggregateRow {
    pub minute: i64,
    pub api: String,
    pub version: String,
    pub route: String,
    /// `""` without an app.
    pub app: String,
    /// 1..=5.
    pub class: i16,
    pub requests: u64,
    /// Encoded histograms.
    pub total: String,
    pub gateway: String,
    pub upstream: String,
}

/// Which aggregates to read; `None` is any.
#[derive(Clone, Debug, Default)]
pub struct AggregateFilter {
    pub api: Option<String>,
    pub version: Option<String>,
    pub route: Option<String>,
    pub app: Option<String>,
    pub class: Option<i16>,
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Store {
    /// Writes rows as `node`'s absolute aggregates.
    pub async fn put_aggregates(
        &self,
        node: &str,
        rows: &[AggregateRow],
    ) -> Result<(), StoreError> {
        with_pool!(self, p => {
            let mut tx = p.begin().await.context("starting an analytics flush")?;
            for r in rows {
                sqlx::query(
                    "INSERT INTO analytics_minutes (node, minute, api, version, route, app, class, requests, total, gateway, upstream) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                     ON CONFLICT (node, minute, api, version, route, app, class) \
                     DO UPDATE SET requests = excluded.requests, total = excluded.total, gateway = excluded.gateway, upstream = excluded.upstream",
                )
                .bind(node)
                .bind(r.minute)
                .bind(&r.api)
                .bind(&r.version)
                .bind(&r.route)
                .bind(&r.app)
                .bind(r.class)
                .bind(to_i64(r.requests))
                .bind(&r.total)
                .bind(&r.gateway)
                .bind(&r.upstream)
                .execute(&mut *tx)
                .await
                .context("writing analytics")?;
            }
            tx.commit().await.context("committing an analytics flush")?;
            Ok(())
        })
    }

    /// Every row for minutes in `[from, to)` matching `filter`, oldest first: each node's
    /// minutes, and the hours and days rolled up from older minutes (one per hour or day,
    /// at its first minute). One statement, so a roll-up running meanwhile is seen either
    /// before or after, never half.
    pub async fn aggregates(
        &self,
        from: i64,
        to: i64,
        filter: &AggregateFilter,
    ) -> Result<Vec<AggregateRow>, StoreError> {
        const WHERE: &str = "BETWEEN_T AND ($3 IS NULL OR api = $3) AND ($4 IS NULL OR version = $4) \
             AND ($5 IS NULL OR route = $5) AND ($6 IS NULL OR app = $6) AND ($7 IS NULL OR class = $7)";
        const COLUMNS: &str = "api, version, route, app, class, requests, total, gateway, upstream";
        let part = |table: &str, time: &str| {
            format!(
                "SELECT {time} AS t, {COLUMNS} FROM {table} WHERE {}",
                WHERE.replace("BETWEEN_T", &format!("{time} >= $1 AND {time} < $2"))
            )
        };
        let sql = format!(
            "{} UNION ALL {} UNION ALL {} ORDER BY t",
            part("analytics_minutes", "minute"),
            part("analytics_hours", "start"),
            part("analytics_days", "start")
        );
        with_pool!(self, p => {
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(from)
            .bind(to)
            .bind(filter.api.as_deref())
            .bind(filter.version.as_deref())
            .bind(filter.route.as_deref())
            .bind(filter.app.as_deref())
            .bind(filter.class)
            .fetch_all(p)
            .await
            .context("reading analytics")?
            .into_iter()
            .map(|r| {
                Ok::<_, sqlx::Error>(AggregateRow {
                    minute: r.try_get(0)?,
                    api: r.try_get(1)?,
                    version: r.try_get(2)?,
                    route: r.try_get(3)?,
                    app: r.try_get(4)?,
                    class: r.try_get(5)?,
                    requests: u64::try_from(r.try_get::<i64, _>(6)?).unwrap_or(0),
                    total: r.try_get(7)?,
                    gateway: r.try_get(8)?,
                    upstream: r.try_get(9)?,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .context("reading analytics")
        })
    }

    /// Moves the oldest hour (or day) of rows older than `before` (Unix minutes) into the
    /// next granularity, merging every node's rows and whatever that hour (day) already
    /// holds. One hour or day per call, in one transaction; answers how many rows were
    /// moved (0: nothing is older than `before`). Safe to run on several nodes at once: the
    /// rows a call takes are deleted as it reads them, so no other call takes them too.
    pub async fn roll_up(&self, kind: Rollup, before: i64) -> Result<u64, StoreError> {
        let (src, time, dst, size) = kind.tables();
        let lock = match self.backend() {
            crate::Backend::Postgres => " FOR UPDATE",
            crate::Backend::Sqlite => "",
        };
        let oldest_sql = format!("SELECT MIN({time}) FROM {src} WHERE {time} < $1");
        let take_sql = format!(
            "DELETE FROM {src} WHERE {time} >= $1 AND {time} < $2 \
             RETURNING api, version, route, app, class, requests, total, gateway, upstream"
        );
        let existing_sql = format!(
            "SELECT requests, total, gateway, upstream FROM {dst} WHERE start = $1 AND api = $2 \
             AND version = $3 AND route = $4 AND app = $5 AND class = $6{lock}"
        );
        let put_sql = format!(
            "INSERT INTO {dst} (start, api, version, route, app, class, requests, total, gateway, upstream) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (start, api, version, route, app, class) DO UPDATE SET requests = excluded.requests, \
             total = excluded.total, gateway = excluded.gateway, upstream = excluded.upstream"
        );
        let serialize = match self.backend() {
            // Two nodes merging into the same hour row must not overwrite each other: one
            // roll-up at a time (SQLite writers are serialised already).
            crate::Backend::Postgres => Some("SELECT pg_advisory_xact_lock(7460263112)"),
            crate::Backend::Sqlite => None,
        };
        with_pool!(self, p => {
            let mut tx = p.begin().await.context("starting a roll-up")?;
            if let Some(sql) = serialize {
                sqlx::query(sql)
                    .execute(&mut *tx)
                    .await
                    .context("waiting for another node's roll-up")?;
            }
            let oldest: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(oldest_sql.clone()))
                .bind(before)
                .fetch_one(&mut *tx)
                .await
                .context("finding analytics to roll up")?;
            let Some(oldest) = oldest else {
                return Ok(0);
            };
            let bucket = oldest.div_euclid(size) * size;
            let taken = sqlx::query(sqlx::AssertSqlSafe(take_sql.clone()))
                .bind(bucket)
                .bind((bucket + size).min(before))
                .fetch_all(&mut *tx)
                .await
                .context("taking analytics to roll up")?;
            let moved = taken.len() as u64;
            let mut merged: BTreeMap<Dims, Merged> = BTreeMap::new();
            for r in taken {
                let dims: Dims = (
                    r.try_get(0).context("reading analytics")?,
                    r.try_get(1).context("reading analytics")?,
                    r.try_get(2).context("reading analytics")?,
                    r.try_get(3).context("reading analytics")?,
                    r.try_get(4).context("reading analytics")?,
                );
                let requests: i64 = r.try_get(5).context("reading analytics")?;
                let hists: [String; 3] = [
                    r.try_get(6).context("reading analytics")?,
                    r.try_get(7).context("reading analytics")?,
                    r.try_get(8).context("reading analytics")?,
                ];
                merged.entry(dims).or_default().add(requests, &hists);
            }
            for (d, mut m) in merged {
                let existing = sqlx::query(sqlx::AssertSqlSafe(existing_sql.clone()))
                    .bind(bucket)
                    .bind(&d.0)
                    .bind(&d.1)
                    .bind(&d.2)
                    .bind(&d.3)
                    .bind(d.4)
                    .fetch_optional(&mut *tx)
                    .await
                    .context("reading rolled-up analytics")?;
                if let Some(r) = existing {
                    let requests: i64 = r.try_get(0).context("reading analytics")?;
                    let hists: [String; 3] = [
                        r.try_get(1).context("reading analytics")?,
                        r.try_get(2).context("reading analytics")?,
                        r.try_get(3).context("reading analytics")?,
                    ];
                    m.add(requests, &hists);
                }
                sqlx::query(sqlx::AssertSqlSafe(put_sql.clone()))
                    .bind(bucket)
                    .bind(&d.0)
                    .bind(&d.1)
                    .bind(&d.2)
                    .bind(&d.3)
                    .bind(d.4)
                    .bind(m.requests)
                    .bind(m.hists[0].encode())
                    .bind(m.hists[1].encode())
                    .bind(m.hists[2].encode())
                    .execute(&mut *tx)
                    .await
                    .context("writing rolled-up analytics")?;
            }
            tx.commit().await.context("committing a roll-up")?;
            Ok(moved)
        })
    }

    /// Deletes daily analytics older than `before` (Unix minutes).
    pub async fn expire_analytics(&self, before: i64) -> Result<u64, StoreError> {
        with_pool!(self, p => {
            Ok(sqlx::query("DELETE FROM analytics_days WHERE start < $1")
                .bind(before)
                .execute(p)
                .await
                .context("expiring analytics")?
                .rows_affected())
        })
    }
}

/// Which granularity rolls into which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rollup {
    MinutesToHours,
    HoursToDays,
}

impl Rollup {
    /// (source table, its time column, target table, target size in minutes)
    fn tables(self) -> (&'static str, &'static str, &'static str, i64) {
        match self {
            Rollup::MinutesToHours => ("analytics_minutes", "minute", "analytics_hours", 60),
            Rollup::HoursToDays => ("analytics_hours", "start", "analytics_days", 1440),
        }
    }
}

type Dims = (String, String, String, String, i16);

#[derive(Default)]
struct Merged {
    requests: i64,
    hists: [Histogram; 3],
}

impl Merged {
    fn add(&mut self, requests: i64, hists: &[String; 3]) {
        self.requests = self.requests.saturating_add(requests);
        for (mine, text) in self.hists.iter_mut().zip(hists) {
            // A histogram that does not read (never written by Tollgate) adds nothing.
            if let Some(h) = Histogram::decode(text) {
                mine.merge(&h);
            }
        }
    }
}

/// When one app first and last had a successful (2xx) answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppActivity {
    pub app: String,
    /// Unix minutes (an hour's or day's first minute once rolled up).
    pub first: i64,
    pub last: i64,
}

impl Store {
    /// Every app's first and last successful call, over all kept analytics, of one API or
    /// of all.
    pub async fn app_activity(&self, api: Option<&str>) -> Result<Vec<AppActivity>, StoreError> {
        let part = |table: &str, time: &str| {
            format!(
                "SELECT app, MIN({time}) AS f, MAX({time}) AS l FROM {table} \
                 WHERE class = 2 AND app <> '' AND ($1 IS NULL OR api = $1) GROUP BY app"
            )
        };
        let sql = format!(
            "SELECT app, MIN(f), MAX(l) FROM ({} UNION ALL {} UNION ALL {}) AS a GROUP BY app ORDER BY app",
            part("analytics_minutes", "minute"),
            part("analytics_hours", "start"),
            part("analytics_days", "start")
        );
        with_pool!(self, p => {
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(api)
                .fetch_all(p)
                .await
                .context("reading app activity")?
                .into_iter()
                .map(|r| {
                    Ok::<_, sqlx::Error>(AppActivity {
                        app: r.try_get(0)?,
                        first: r.try_get(1)?,
                        last: r.try_get(2)?,
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .context("reading app activity")
        })
    }
}
