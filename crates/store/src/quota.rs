//! Quota counters: one row per counter and calendar period, incremented in batches by
//! each node's flush. Not configuration: no revision bump, no change log.

use sqlx::Row;

use crate::error::{Context, StoreError};
use crate::store::{Pool, Store, with_pool};

impl Store {
    /// Adds each `(counter, period, increment)` to its row in one transaction and answers
    /// the totals after adding, in the same order.
    pub async fn add_quota_usage(
        &self,
        deltas: &[(String, String, u64)],
    ) -> Result<Vec<u64>, StoreError> {
        with_pool!(self, p => {
            let mut tx = p.begin().await.context("starting a quota flush")?;
            let mut totals = Vec::with_capacity(deltas.len());
            for (counter, period, n) in deltas {
                let row = sqlx::query(
                    "INSERT INTO quota_usage (counter, period, used) VALUES ($1, $2, $3) \
                     ON CONFLICT (counter, period) DO UPDATE SET used = quota_usage.used + excluded.used \
                     RETURNING used",
                )
                .bind(counter)
                .bind(period)
                .bind(i64::try_from(*n).unwrap_or(i64::MAX))
                .fetch_one(&mut *tx)
                .await
                .context("adding to a quota counter")?;
                let used: i64 = row.try_get(0).context("reading a quota counter")?;
                totals.push(u64::try_from(used).unwrap_or(0));
            }
            tx.commit().await.context("committing a quota flush")?;
            Ok(totals)
        })
    }

    /// Every counter of the given periods.
    pub async fn quota_usage(
        &self,
        periods: &[String],
    ) -> Result<Vec<(String, String, u64)>, StoreError> {
        let mut out = Vec::new();
        for period in periods {
            let rows = with_pool!(self, p => {
                sqlx::query("SELECT counter, period, used FROM quota_usage WHERE period = $1")
                    .bind(period)
                    .fetch_all(p)
                    .await
                    .context("reading quota counters")?
                    .into_iter()
                    .map(|r| {
                        Ok::<_, sqlx::Error>((
                            r.try_get::<String, _>(0)?,
                            r.try_get::<String, _>(1)?,
                            u64::try_from(r.try_get::<i64, _>(2)?).unwrap_or(0),
                        ))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .context("reading quota counters")?
            });
            out.extend(rows);
        }
        Ok(out)
    }
}
