//! Retention of records other than analytics: notices, finished webhook deliveries and
//! alerts whose block has ended are deleted once older than the configured time.

use crate::error::{Context, StoreError};
use crate::store::{Pool, Store, with_pool};

/// What one retention pass deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub notices: u64,
    pub webhook_deliveries: u64,
    pub alerts: u64,
}

impl Pruned {
    pub fn total(&self) -> u64 {
        self.notices + self.webhook_deliveries + self.alerts
    }
}

impl Store {
    /// Deletes notices created before `notices_before`, deliveries that are no longer
    /// pending and were created before `deliveries_before`, and alerts raised before
    /// `alerts_before` whose block (if any) ended before `now`. Times are Unix seconds.
    pub async fn prune_records(
        &self,
        notices_before: i64,
        deliveries_before: i64,
        alerts_before: i64,
        now: i64,
    ) -> Result<Pruned, StoreError> {
        with_pool!(self, p => {
            let notices = sqlx::query("DELETE FROM notices WHERE created_at < $1")
                .bind(notices_before)
                .execute(p)
                .await
                .context("pruning notices")?
                .rows_affected();
            let webhook_deliveries = sqlx::query(
                "DELETE FROM webhook_deliveries WHERE created_at < $1 AND status <> 'pending'",
            )
            .bind(deliveries_before)
            .execute(p)
            .await
            .context("pruning webhook deliveries")?
            .rows_affected();
            let alerts = sqlx::query(
                "DELETE FROM alerts WHERE at < $1 AND (blocked_until IS NULL OR blocked_until < $2)",
            )
            .bind(alerts_before)
            .bind(now)
            .execute(p)
            .await
            .context("pruning alerts")?
            .rows_affected();
            Ok(Pruned {
                notices,
                webhook_deliveries,
                alerts,
            })
        })
    }
}
