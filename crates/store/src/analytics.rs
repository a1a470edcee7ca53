//! Analytics aggregates: each node's per-minute rows (absolute, so a retried flush never
//! double counts) and the reads the analytics queries merge.

use sqlx::Row;

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

    /// Every node's rows for minutes in `[from, to)` matching `filter`, oldest first.
    pub async fn aggregates(
        &self,
        from: i64,
        to: i64,
        filter: &AggregateFilter,
    ) -> Result<Vec<AggregateRow>, StoreError> {
        with_pool!(self, p => {
            sqlx::query(
                "SELECT minute, api, version, route, app, class, requests, total, gateway, upstream \
                 FROM analytics_minutes WHERE minute >= $1 AND minute < $2 \
                 AND ($3 IS NULL OR api = $3) AND ($4 IS NULL OR version = $4) \
                 AND ($5 IS NULL OR route = $5) AND ($6 IS NULL OR app = $6) \
                 AND ($7 IS NULL OR class = $7) ORDER BY minute",
            )
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
}
