//! What Tollgate tells people and systems: the webhook outbox (written with the event,
//! delivered and retried by a worker, claimed so two nodes never send one delivery at the
//! same time), developer notices for the portal, and the prepaid credit ledger.

use sqlx::Row;

use crate::error::{Context, StoreError};
use crate::store::{Pool, Store, with_pool};

/// One webhook delivery.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Delivery {
    pub id: String,
    pub webhook: String,
    pub event: String,
    /// Same `dedupe`, same delivery: raising an event twice sends it once.
    #[serde(skip)]
    pub dedupe: String,
    /// The JSON sent.
    pub body: String,
    pub created_at: i64,
    pub attempts: i64,
    pub next_attempt_at: i64,
    /// `pending`, `delivered` or `failed` (gave up).
    pub status: String,
    pub last_error: Option<String>,
}

/// How a delivery attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    Retry { at: i64, error: String },
    GaveUp { error: String },
}

/// A notice to a developer about one of their apps.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Notice {
    /// Derived from what it is about: the same notice is stored once.
    pub id: String,
    pub developer: String,
    pub app: String,
    pub kind: String,
    pub message: String,
    /// Details as JSON.
    pub body: String,
    pub created_at: i64,
}

/// One entry of a subscription's prepaid credit.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CreditEntry {
    pub id: String,
    pub subscription: String,
    /// The month it belongs to (`YYYY-MM`).
    pub period: String,
    /// `topup` or `invoice`.
    pub kind: String,
    /// Decimal string, negative for a debit.
    pub amount: String,
    pub note: String,
    pub created_at: i64,
}

macro_rules! delivery {
    ($r:expr) => {{
        let r = $r;
        Ok::<_, sqlx::Error>(Delivery {
            id: r.try_get("id")?,
            webhook: r.try_get("webhook")?,
            event: r.try_get("event")?,
            dedupe: r.try_get("dedupe")?,
            body: r.try_get("body")?,
            created_at: r.try_get("created_at")?,
            attempts: r.try_get("attempts")?,
            next_attempt_at: r.try_get("next_attempt_at")?,
            status: r.try_get("status")?,
            last_error: r.try_get("last_error")?,
        })
    }};
}

const DELIVERY_COLUMNS: &str =
    "id, webhook, event, dedupe, body, created_at, attempts, next_attempt_at, status, last_error";

impl Store {
    /// Queues deliveries; one whose `dedupe` is already queued is skipped. Answers how
    /// many were queued.
    pub async fn enqueue_deliveries(&self, rows: &[Delivery]) -> Result<u64, StoreError> {
        with_pool!(self, p => {
            let mut tx = p.begin().await.context("queueing webhook deliveries")?;
            let mut queued = 0;
            for d in rows {
                queued += sqlx::query(
                    "INSERT INTO webhook_deliveries (id, webhook, event, dedupe, body, created_at, attempts, next_attempt_at, status) \
                     VALUES ($1, $2, $3, $4, $5, $6, 0, $7, 'pending') ON CONFLICT (dedupe) DO NOTHING",
                )
                .bind(&d.id)
                .bind(&d.webhook)
                .bind(&d.event)
                .bind(&d.dedupe)
                .bind(&d.body)
                .bind(d.created_at)
                .bind(d.next_attempt_at)
                .execute(&mut *tx)
                .await
                .context("queueing a webhook delivery")?
                .rows_affected();
            }
            tx.commit().await.context("queueing webhook deliveries")?;
            Ok(queued)
        })
    }

    /// Claims up to `limit` pending deliveries due at `now`: each is pushed to `now +
    /// lease` first, so another worker (or node) does not take it while it is being sent.
    pub async fn claim_deliveries(
        &self,
        now: i64,
        lease: i64,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let lock = match self.backend() {
            crate::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            crate::Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE webhook_deliveries SET next_attempt_at = $1 WHERE id IN \
             (SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $2 \
              ORDER BY next_attempt_at, created_at LIMIT $3{lock}) RETURNING {DELIVERY_COLUMNS}"
        );
        with_pool!(self, p => {
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(now + lease)
                .bind(now)
                .bind(limit)
                .fetch_all(p)
                .await
                .context("claiming webhook deliveries")?
                .into_iter()
                .map(|r| delivery!(r))
                .collect::<Result<Vec<_>, _>>()
                .context("claiming webhook deliveries")
        })
    }

    /// Records how an attempt went.
    pub async fn finish_delivery(&self, id: &str, attempt: &Attempt) -> Result<(), StoreError> {
        let (status, at, error) = match attempt {
            Attempt::Delivered => ("delivered", None, None),
            Attempt::Retry { at, error } => ("pending", Some(*at), Some(error.as_str())),
            Attempt::GaveUp { error } => ("failed", None, Some(error.as_str())),
        };
        with_pool!(self, p => {
            sqlx::query(
                "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, \
                 next_attempt_at = COALESCE($2, next_attempt_at), last_error = $3 WHERE id = $4",
            )
            .bind(status)
            .bind(at)
            .bind(error)
            .bind(id)
            .execute(p)
            .await
            .context("recording a webhook delivery")?;
            Ok(())
        })
    }

    /// The latest deliveries, newest first, optionally of one status.
    pub async fn deliveries(
        &self,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE ($1 IS NULL OR status = $1) \
             ORDER BY created_at DESC, id LIMIT $2"
        );
        with_pool!(self, p => {
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(status)
                .bind(limit)
                .fetch_all(p)
                .await
                .context("reading webhook deliveries")?
                .into_iter()
                .map(|r| delivery!(r))
                .collect::<Result<Vec<_>, _>>()
                .context("reading webhook deliveries")
        })
    }

    /// Stores a notice unless one with its id exists. Answers whether it is new.
    pub async fn add_notice(&self, n: &Notice) -> Result<bool, StoreError> {
        with_pool!(self, p => {
            let added = sqlx::query(
                "INSERT INTO notices (id, developer, app, kind, message, body, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&n.id)
            .bind(&n.developer)
            .bind(&n.app)
            .bind(&n.kind)
            .bind(&n.message)
            .bind(&n.body)
            .bind(n.created_at)
            .execute(p)
            .await
            .context("storing a notice")?
            .rows_affected();
            Ok(added == 1)
        })
    }

    /// A developer's notices (or everyone's), newest first.
    pub async fn notices(
        &self,
        developer: Option<&str>,
        app: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Notice>, StoreError> {
        with_pool!(self, p => {
            sqlx::query(
                "SELECT id, developer, app, kind, message, body, created_at FROM notices \
                 WHERE ($1 IS NULL OR developer = $1) AND ($2 IS NULL OR app = $2) \
                 ORDER BY created_at DESC, id LIMIT $3",
            )
            .bind(developer)
            .bind(app)
            .bind(limit)
            .fetch_all(p)
            .await
            .context("reading notices")?
            .into_iter()
            .map(|r| {
                Ok::<_, sqlx::Error>(Notice {
                    id: r.try_get("id")?,
                    developer: r.try_get("developer")?,
                    app: r.try_get("app")?,
                    kind: r.try_get("kind")?,
                    message: r.try_get("message")?,
                    body: r.try_get("body")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .context("reading notices")
        })
    }

    /// Adds a credit entry (a top-up).
    pub async fn add_credit(&self, e: &CreditEntry) -> Result<(), StoreError> {
        with_pool!(self, p => {
            sqlx::query(
                "INSERT INTO credit_ledger (id, subscription, period, kind, amount, note, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&e.id)
            .bind(&e.subscription)
            .bind(&e.period)
            .bind(&e.kind)
            .bind(&e.amount)
            .bind(&e.note)
            .bind(e.created_at)
            .execute(p)
            .await
            .context("adding credit")?;
            Ok(())
        })
    }

    /// Replaces the invoice debits of `period` with `rows`, in one transaction.
    pub async fn replace_invoice_debits(
        &self,
        period: &str,
        rows: &[CreditEntry],
    ) -> Result<(), StoreError> {
        with_pool!(self, p => {
            let mut tx = p.begin().await.context("writing invoice debits")?;
            sqlx::query("DELETE FROM credit_ledger WHERE period = $1 AND kind = 'invoice'")
                .bind(period)
                .execute(&mut *tx)
                .await
                .context("clearing invoice debits")?;
            for e in rows {
                sqlx::query(
                    "INSERT INTO credit_ledger (id, subscription, period, kind, amount, note, created_at) \
                     VALUES ($1, $2, $3, 'invoice', $4, $5, $6)",
                )
                .bind(&e.id)
                .bind(&e.subscription)
                .bind(&e.period)
                .bind(&e.amount)
                .bind(&e.note)
                .bind(e.created_at)
                .execute(&mut *tx)
                .await
                .context("writing an invoice debit")?;
            }
            tx.commit().await.context("writing invoice debits")?;
            Ok(())
        })
    }

    /// Every credit entry, of one subscription or of all, oldest first.
    pub async fn credit_entries(
        &self,
        subscription: Option<&str>,
    ) -> Result<Vec<CreditEntry>, StoreError> {
        with_pool!(self, p => {
            sqlx::query(
                "SELECT id, subscription, period, kind, amount, note, created_at FROM credit_ledger \
                 WHERE ($1 IS NULL OR subscription = $1) ORDER BY created_at, id",
            )
            .bind(subscription)
            .fetch_all(p)
            .await
            .context("reading credit")?
            .into_iter()
            .map(|r| {
                Ok::<_, sqlx::Error>(CreditEntry {
                    id: r.try_get("id")?,
                    subscription: r.try_get("subscription")?,
                    period: r.try_get("period")?,
                    kind: r.try_get("kind")?,
                    amount: r.try_get("amount")?,
                    note: r.try_get("note")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .context("reading credit")
        })
    }
}
