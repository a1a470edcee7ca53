//! A developer's personal data outside the configuration: what an export reads and an
//! erasure removes (their portal account, sessions, reset links and notices).

use sqlx::Row;

use crate::error::{Context, StoreError};
use crate::invoices::InvoiceRow;
use crate::store::{Pool, Store, with_pool};

/// What an erasure removed from the store, by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Erased {
    pub portal_accounts: u64,
    pub sessions: u64,
    pub password_resets: u64,
    pub notices: u64,
}

/// A portal account as an export shows it: never the password hash.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PortalAccountInfo {
    pub email: String,
    pub created_at: String,
}

impl Store {
    /// Every invoice of one app, oldest period first.
    pub async fn invoices_of_app(&self, app: &str) -> Result<Vec<InvoiceRow>, StoreError> {
        with_pool!(self, p => sqlx::query(
            "SELECT id, period, app, product, body FROM invoices WHERE app = $1 ORDER BY period, id",
        )
        .bind(app)
        .fetch_all(p)
        .await
        .and_then(|rows| {
            rows.iter()
                .map(|r| {
                    Ok(InvoiceRow {
                        id: r.try_get("id")?,
                        period: r.try_get("period")?,
                        app: r.try_get("app")?,
                        product: r.try_get("product")?,
                        body: r.try_get("body")?,
                    })
                })
                .collect()
        })
        .context("reading an app's invoices"))
    }

    /// The portal account of an e-mail, if there is one.
    pub async fn portal_account_info(
        &self,
        email: &str,
    ) -> Result<Option<PortalAccountInfo>, StoreError> {
        with_pool!(self, p => sqlx::query("SELECT email, created_at FROM portal_accounts WHERE email = $1")
            .bind(email)
            .fetch_optional(p)
            .await
            .and_then(|r| {
                r.map(|r| {
                    Ok(PortalAccountInfo {
                        email: r.try_get(0)?,
                        created_at: r.try_get(1)?,
                    })
                })
                .transpose()
            })
            .context("reading a portal account"))
    }

    /// Removes a developer's portal account, sessions, reset links and notices, in one
    /// transaction.
    pub async fn erase_developer_data(&self, email: &str) -> Result<Erased, StoreError> {
        with_pool!(self, p => {
            let mut tx = p.begin().await.context("starting an erasure")?;
            let sessions = sqlx::query("DELETE FROM web_sessions WHERE realm = 'portal' AND lower(subject) = lower($1)")
                .bind(email)
                .execute(&mut *tx)
                .await
                .context("erasing sessions")?
                .rows_affected();
            let password_resets = sqlx::query("DELETE FROM password_resets WHERE realm = 'portal' AND lower(email) = lower($1)")
                .bind(email)
                .execute(&mut *tx)
                .await
                .context("erasing password resets")?
                .rows_affected();
            let portal_accounts = sqlx::query("DELETE FROM portal_accounts WHERE lower(email) = lower($1)")
                .bind(email)
                .execute(&mut *tx)
                .await
                .context("erasing a portal account")?
                .rows_affected();
            let notices = sqlx::query("DELETE FROM notices WHERE lower(developer) = lower($1)")
                .bind(email)
                .execute(&mut *tx)
                .await
                .context("erasing notices")?
                .rows_affected();
            tx.commit().await.context("committing an erasure")?;
            Ok(Erased {
                portal_accounts,
                sessions,
                password_resets,
                notices,
            })
        })
    }
}
