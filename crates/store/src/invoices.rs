//! Invoices of a period. Running a period again replaces its invoices in one transaction,
//! so a re-run never leaves a mix of old and new.

use sqlx::Row;

use crate::error::{Context, StoreError};
use crate::store::{Pool, Store, with_pool};

/// One stored invoice; `body` is its JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvoiceRow {
    pub id: String,
    pub period: String,
    pub app: String,
    pub product: String,
    pub body: String,
}

macro_rules! from_row {
    ($r:expr) => {{
        let r = $r;
        Ok::<_, sqlx::Error>(InvoiceRow {
            id: r.try_get("id")?,
            period: r.try_get("period")?,
            app: r.try_get("app")?,
            product: r.try_get("product")?,
            body: r.try_get("body")?,
        })
    }};
}

impl Store {
    /// Replaces the invoices of `period` with `rows`.
    pub async fn replace_invoices(
        &self,
        period: &str,
        rows: &[InvoiceRow],
    ) -> Result<(), StoreError> {
        with_pool!(self, p => {
            let mut tx = p.begin().await.context("starting an invoice run")?;
            sqlx::query("DELETE FROM invoices WHERE period = $1")
                .bind(period)
                .execute(&mut *tx)
                .await
                .context("clearing a period's invoices")?;
            for r in rows {
                sqlx::query(
                    "INSERT INTO invoices (id, period, app, product, body) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&r.id)
                .bind(&r.period)
                .bind(&r.app)
                .bind(&r.product)
                .bind(&r.body)
                .execute(&mut *tx)
                .await
                .context("storing an invoice")?;
            }
            tx.commit().await.context("committing an invoice run")?;
            Ok(())
        })
    }

    /// The invoices of `period`, by app and product.
    pub async fn invoices(&self, period: &str) -> Result<Vec<InvoiceRow>, StoreError> {
        with_pool!(self, p => {
            sqlx::query(
                "SELECT id, period, app, product, body FROM invoices WHERE period = $1 ORDER BY app, product",
            )
            .bind(period)
            .fetch_all(p)
            .await
            .context("reading invoices")?
            .into_iter()
            .map(|r| from_row!(r))
            .collect::<Result<Vec<_>, _>>()
            .context("reading invoices")
        })
    }

    pub async fn invoice(&self, id: &str) -> Result<Option<InvoiceRow>, StoreError> {
        with_pool!(self, p => {
            sqlx::query("SELECT id, period, app, product, body FROM invoices WHERE id = $1")
                .bind(id)
                .fetch_optional(p)
                .await
                .context("reading an invoice")?
                .map(|r| from_row!(r))
                .transpose()
                .context("reading an invoice")
        })
    }
}
