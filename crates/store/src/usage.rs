//! Metered usage: each node's absolute count per subscription and minute. Writing the same
//! row again replaces it, so a retried flush never double counts; readers add up nodes.

use sqlx::Row;

use crate::error::{Context, StoreError};
use crate::store::{Pool, Store, with_pool};

/// Usage of one subscription over a time range, all nodes added up.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct UsageTotal {
    pub subscription: String,
    pub requests: u64,
    pub billable: u64,
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Store {
    /// Writes `(subscription, minute, requests, billable)` rows as `node`'s counts.
    pub async fn put_usage(
        &self,
        node: &str,
        rows: &[(String, i64, u64, u64)],
    ) -> Result<(), StoreError> {
        with_pool!(self, p => {
            let mut tx = p.begin().await.context("starting a usage flush")?;
            for (subscription, minute, requests, billable) in rows {
                sqlx::query(
                    "INSERT INTO usage_minutes (node, subscription, minute, requests, billable) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (node, subscription, minute) \
                     DO UPDATE SET requests = excluded.requests, billable = excluded.billable",
                )
                .bind(node)
                .bind(subscription)
                .bind(minute)
                .bind(to_i64(*requests))
                .bind(to_i64(*billable))
                .execute(&mut *tx)
                .await
                .context("writing usage")?;
            }
            tx.commit().await.context("committing a usage flush")?;
            Ok(())
        })
    }

    /// Usage per subscription whose name starts with `prefix` (`app:` for one app), for
    /// minutes in `[from, to)` (Unix minutes).
    pub async fn usage(
        &self,
        prefix: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<UsageTotal>, StoreError> {
        let pattern = format!(
            "{}%",
            prefix
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let rows = with_pool!(self, p => {
            sqlx::query(
                "SELECT subscription, CAST(SUM(requests) AS BIGINT), CAST(SUM(billable) AS BIGINT) \
                 FROM usage_minutes WHERE subscription LIKE $1 ESCAPE '\\' AND minute >= $2 AND minute < $3 \
                 GROUP BY subscription ORDER BY subscription",
            )
            .bind(&pattern)
            .bind(from)
            .bind(to)
            .fetch_all(p)
            .await
            .context("reading usage")?
            .into_iter()
            .map(|r| {
                Ok::<_, sqlx::Error>(UsageTotal {
                    subscription: r.try_get(0)?,
                    requests: u64::try_from(r.try_get::<i64, _>(1)?).unwrap_or(0),
                    billable: u64::try_from(r.try_get::<i64, _>(2)?).unwrap_or(0),
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .context("reading usage")?
        });
        Ok(rows)
    }
}

/// Usage of one subscription in one hour, all nodes added up.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct UsageHour {
    pub subscription: String,
    /// The hour's first minute (Unix minutes).
    pub hour: i64,
    pub requests: u64,
    pub billable: u64,
}

impl Store {
    /// Usage per subscription and hour, for minutes in `[from, to)` (Unix minutes), ordered
    /// by subscription and hour.
    pub async fn usage_hours(&self, from: i64, to: i64) -> Result<Vec<UsageHour>, StoreError> {
        let rows = with_pool!(self, p => {
            sqlx::query(
                "SELECT subscription, CAST((minute / 60) * 60 AS BIGINT) AS hour, \
                 CAST(SUM(requests) AS BIGINT), CAST(SUM(billable) AS BIGINT) \
                 FROM usage_minutes WHERE minute >= $1 AND minute < $2 \
                 GROUP BY subscription, hour ORDER BY subscription, hour",
            )
            .bind(from)
            .bind(to)
            .fetch_all(p)
            .await
            .context("reading hourly usage")?
            .into_iter()
            .map(|r| {
                Ok::<_, sqlx::Error>(UsageHour {
                    subscription: r.try_get(0)?,
                    hour: r.try_get(1)?,
                    requests: u64::try_from(r.try_get::<i64, _>(2)?).unwrap_or(0),
                    billable: u64::try_from(r.try_get::<i64, _>(3)?).unwrap_or(0),
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .context("reading hourly usage")?
        });
        Ok(rows)
    }
}
