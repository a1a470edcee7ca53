//! Alerts raised by the detectors, and the blocks they carry.

use sqlx::Row;

use crate::error::{Context, StoreError};
use crate::store::{Pool, Store, with_pool};

/// One stored alert.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AlertRow {
    pub id: String,
    pub detector: String,
    /// `address` or `app`.
    pub subject_kind: String,
    pub subject: String,
    pub api: String,
    pub observed: i64,
    pub threshold: i64,
    pub window_seconds: i64,
    /// Unix seconds; the subject is refused until then.
    pub blocked_until: Option<i64>,
    /// Unix seconds.
    pub at: i64,
    /// The node that raised it.
    pub node: String,
    pub message: String,
}

const COLUMNS: &str = "id, detector, subject_kind, subject, api, observed, threshold, window_seconds, blocked_until, at, node, message";

macro_rules! alert {
    ($r:expr) => {{
        let r = $r;
        Ok::<_, sqlx::Error>(AlertRow {
            id: r.try_get("id")?,
            detector: r.try_get("detector")?,
            subject_kind: r.try_get("subject_kind")?,
            subject: r.try_get("subject")?,
            api: r.try_get("api")?,
            observed: r.try_get("observed")?,
            threshold: r.try_get("threshold")?,
            window_seconds: r.try_get("window_seconds")?,
            blocked_until: r.try_get("blocked_until")?,
            at: r.try_get("at")?,
            node: r.try_get("node")?,
            message: r.try_get("message")?,
        })
    }};
}

impl Store {
    pub async fn add_alert(&self, a: &AlertRow) -> Result<(), StoreError> {
        with_pool!(self, p => {
            sqlx::query(
                "INSERT INTO alerts (id, detector, subject_kind, subject, api, observed, threshold, window_seconds, blocked_until, at, node, message) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&a.id)
            .bind(&a.detector)
            .bind(&a.subject_kind)
            .bind(&a.subject)
            .bind(&a.api)
            .bind(a.observed)
            .bind(a.threshold)
            .bind(a.window_seconds)
            .bind(a.blocked_until)
            .bind(a.at)
            .bind(&a.node)
            .bind(&a.message)
            .execute(p)
            .await
            .context("storing an alert")?;
            Ok(())
        })
    }

    /// The latest alerts, newest first, optionally of one detector and since a time.
    pub async fn alerts(
        &self,
        detector: Option<&str>,
        since: i64,
        limit: i64,
    ) -> Result<Vec<AlertRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM alerts WHERE ($1 IS NULL OR detector = $1) AND at >= $2 \
             ORDER BY at DESC, id LIMIT $3"
        );
        with_pool!(self, p => {
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(detector)
                .bind(since)
                .bind(limit)
                .fetch_all(p)
                .await
                .context("reading alerts")?
                .into_iter()
                .map(|r| alert!(r))
                .collect::<Result<Vec<_>, _>>()
                .context("reading alerts")
        })
    }

    /// Alerts whose block still runs at `now`.
    pub async fn active_blocks(&self, now: i64) -> Result<Vec<AlertRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM alerts WHERE blocked_until > $1 ORDER BY at");
        with_pool!(self, p => {
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(now)
                .fetch_all(p)
                .await
                .context("reading blocks")?
                .into_iter()
                .map(|r| alert!(r))
                .collect::<Result<Vec<_>, _>>()
                .context("reading blocks")
        })
    }

    /// Ends an alert's block now. Answers whether the alert exists.
    pub async fn lift_block(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        with_pool!(self, p => {
            let n = sqlx::query(
                "UPDATE alerts SET blocked_until = CASE WHEN blocked_until > $2 THEN $2 ELSE blocked_until END WHERE id = $1",
            )
            .bind(id)
            .bind(now)
            .execute(p)
            .await
            .context("lifting a block")?
            .rows_affected();
            Ok(n == 1)
        })
    }
}
