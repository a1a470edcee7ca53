//! Admin API tokens. Only a hash of each secret is stored; the admin crate hashes and
//! compares, this module keeps the rows.

use serde::Serialize;
use sqlx::Row;

use crate::audit::{Actor, log_change};
use crate::error::{Context, StoreError};
use crate::store::{Pool, Store, bump_revision, with_pool};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    #[serde(skip)]
    pub secret_hash: String,
    pub role: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    /// The endpoint groups the token reaches; `None` reaches every group.
    pub scopes: Option<Vec<String>>,
    /// The team whose APIs the token may change; `None` for a token without a team.
    pub team: Option<String>,
}

/// Reads the `scopes` column: a JSON array of group names, or NULL.
fn scopes_from_column(text: Option<String>) -> Result<Option<Vec<String>>, sqlx::Error> {
    text.map(|t| serde_json::from_str(&t).map_err(|e| sqlx::Error::Decode(Box::new(e))))
        .transpose()
}

fn scopes_to_column(scopes: &Option<Vec<String>>) -> Option<String> {
    scopes
        .as_ref()
        .map(|s| serde_json::Value::from(s.clone()).to_string())
}

macro_rules! from_row {
    ($r:expr) => {{
        let r = $r;
        Ok::<_, sqlx::Error>(TokenRecord {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            secret_hash: r.try_get("secret_hash")?,
            role: r.try_get("role")?,
            created_at: r.try_get("created_at")?,
            expires_at: r.try_get("expires_at")?,
            revoked_at: r.try_get("revoked_at")?,
            scopes: scopes_from_column(r.try_get("scopes")?)?,
            team: r.try_get("team")?,
        })
    }};
}

impl Store {
    /// Stores a token, or replaces the one with the same id (the bootstrap token is
    /// rewritten at each start from `TOLLGATE_ADMIN_TOKEN`).
    pub async fn put_token(&self, t: &TokenRecord, actor: &Actor<'_>) -> Result<i64, StoreError> {
        let _guard = self.write.lock().await;
        let now = crate::now_rfc3339();
        with_pool!(self, p => {
            let mut tx = p.begin().await.context("starting a change")?;
            let revision = bump_revision!(tx);
            sqlx::query(
                "INSERT INTO admin_tokens (id, name, secret_hash, role, created_at, expires_at, revoked_at, scopes, team) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
                 secret_hash = excluded.secret_hash, role = excluded.role, expires_at = excluded.expires_at, \
                 revoked_at = excluded.revoked_at, scopes = excluded.scopes, team = excluded.team",
            )
            .bind(&t.id)
            .bind(&t.name)
            .bind(&t.secret_hash)
            .bind(&t.role)
            .bind(&t.created_at)
            .bind(&t.expires_at)
            .bind(&t.revoked_at)
            .bind(scopes_to_column(&t.scopes))
            .bind(&t.team)
            .execute(&mut *tx)
            .await
            .context("writing a token")?;
            // The record without its secret's hash.
            let after = serde_json::json!({
                "name": t.name, "role": t.role, "expires_at": t.expires_at, "revoked_at": t.revoked_at,
                "scopes": t.scopes, "team": t.team,
            })
            .to_string();
            log_change!(tx, revision, "token", &t.id, "create", actor, &now, None, Some(after));
            tx.commit().await.context("committing a token")?;
            Ok(revision)
        })
    }

    pub async fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        with_pool!(self, p => sqlx::query(
            "SELECT id, name, secret_hash, role, created_at, expires_at, revoked_at, scopes, team \
             FROM admin_tokens WHERE id = $1",
        )
            .bind(id)
            .fetch_optional(p)
            .await
            .and_then(|r| r.map(|r| from_row!(&r)).transpose())
            .context("reading a token"))
    }

    pub async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        with_pool!(self, p => sqlx::query(
            "SELECT id, name, secret_hash, role, created_at, expires_at, revoked_at, scopes, team \
             FROM admin_tokens ORDER BY created_at, id",
        )
            .fetch_all(p)
            .await
            .and_then(|rows| rows.iter().map(|r| from_row!(r)).collect())
            .context("listing tokens"))
    }

    /// Marks a token revoked. Returns false if there is no such live token.
    pub async fn revoke_token(&self, id: &str, actor: &Actor<'_>) -> Result<bool, StoreError> {
        let _guard = self.write.lock().await;
        let now = crate::now_rfc3339();
        with_pool!(self, p => {
            let mut tx = p.begin().await.context("starting a change")?;
            let revision = bump_revision!(tx);
            let done = sqlx::query("UPDATE admin_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(&now)
                .bind(id)
                .execute(&mut *tx)
                .await
                .context("revoking a token")?
                .rows_affected();
            if done == 0 {
                return Ok(false);
            }
            let after = serde_json::json!({ "revoked_at": now }).to_string();
            log_change!(tx, revision, "token", id, "delete", actor, &now, None, Some(after));
            tx.commit().await.context("committing a revocation")?;
            Ok(true)
        })
    }
}
