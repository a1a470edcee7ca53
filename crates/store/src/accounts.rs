//! Web sign-in: dashboard users, developer portal accounts, browser sessions and password
//! reset tokens. Passwords arrive here already hashed (argon2id, by the web crate); session
//! ids and reset tokens arrive as SHA-256 hashes. Nothing here can recover a secret.
//!
//! Creating, changing or removing a dashboard user is a change to who may administer the
//! gateway, so it bumps the revision and is written to the audit log like a token. Portal
//! accounts, sessions and resets are not configuration and are not audited here.

use serde::Serialize;
use sqlx::Row;

use crate::audit::{Actor, log_change};
use crate::error::{Context, StoreError};
use crate::store::{Pool, Store, bump_revision, with_pool};

/// A dashboard user. `password_hash` is never serialised.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserRecord {
    pub email: String,
    pub name: String,
    #[serde(skip)]
    pub password_hash: String,
    pub role: String,
    pub created_at: String,
    pub disabled_at: Option<String>,
    /// The team whose APIs the user may change; `None` for a user without a team.
    pub team: Option<String>,
}

/// A live browser session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRow {
    pub realm: String,
    pub subject: String,
    pub csrf: String,
    pub created_at: i64,
    pub expires_at: i64,
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

macro_rules! user_from_row {
    ($r:expr) => {{
        let r = $r;
        Ok::<_, sqlx::Error>(UserRecord {
            email: r.try_get("email")?,
            name: r.try_get("name")?,
            password_hash: r.try_get("password_hash")?,
            role: r.try_get("role")?,
            created_at: r.try_get("created_at")?,
            disabled_at: r.try_get("disabled_at")?,
            team: r.try_get("team")?,
        })
    }};
}

/// The audited form of a user: everything but the password hash.
fn user_view(u: &UserRecord) -> String {
    serde_json::to_string(u).unwrap_or_default()
}

impl Store {
    /// Creates a dashboard user, or replaces the one with the same e-mail. Returns the
    /// new revision.
    pub async fn put_user(&self, u: &UserRecord, actor: &Actor<'_>) -> Result<i64, StoreError> {
        let before = self.user(&u.email).await?;
        let _guard = self.write.lock().await;
        let now = crate::now_rfc3339();
        with_pool!(self, p => {
            let mut tx = p.begin().await.context("starting a change")?;
            let revision = bump_revision!(tx);
            sqlx::query(
                "INSERT INTO users (email, name, password_hash, role, created_at, disabled_at, team) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (email) DO UPDATE SET name = excluded.name, \
                 password_hash = excluded.password_hash, role = excluded.role, disabled_at = excluded.disabled_at, \
                 team = excluded.team",
            )
            .bind(&u.email)
            .bind(&u.name)
            .bind(&u.password_hash)
            .bind(&u.role)
            .bind(&u.created_at)
            .bind(&u.disabled_at)
            .bind(&u.team)
            .execute(&mut *tx)
            .await
            .context("writing a user")?;
            let op = if before.is_some() { "update" } else { "create" };
            let before = before.as_ref().map(user_view);
            log_change!(tx, revision, "user", &u.email, op, actor, &now, before, Some(user_view(u)));
            tx.commit().await.context("committing a user")?;
            Ok(revision)
        })
    }

    pub async fn user(&self, email: &str) -> Result<Option<UserRecord>, StoreError> {
        with_pool!(self, p => sqlx::query(
            "SELECT email, name, password_hash, role, created_at, disabled_at, team FROM users WHERE email = $1",
        )
        .bind(email)
        .fetch_optional(p)
        .await
        .and_then(|r| r.map(|r| user_from_row!(&r)).transpose())
        .context("reading a user"))
    }

    pub async fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        with_pool!(self, p => sqlx::query(
            "SELECT email, name, password_hash, role, created_at, disabled_at, team FROM users ORDER BY email",
        )
        .fetch_all(p)
        .await
        .and_then(|rows| rows.iter().map(|r| user_from_row!(r)).collect())
        .context("listing users"))
    }

    /// Removes a dashboard user and signs them out everywhere. False if there was none.
    pub async fn delete_user(&self, email: &str, actor: &Actor<'_>) -> Result<bool, StoreError> {
        let Some(before) = self.user(email).await? else {
            return Ok(false);
        };
        let _guard = self.write.lock().await;
        let now = crate::now_rfc3339();
        with_pool!(self, p => {
            let mut tx = p.begin().await.context("starting a change")?;
            let revision = bump_revision!(tx);
            sqlx::query("DELETE FROM users WHERE email = $1")
                .bind(email)
                .execute(&mut *tx)
                .await
                .context("removing a user")?;
            sqlx::query("DELETE FROM web_sessions WHERE realm = 'dashboard' AND subject = $1")
                .bind(email)
                .execute(&mut *tx)
                .await
                .context("ending a user's sessions")?;
            log_change!(tx, revision, "user", email, "delete", actor, &now, Some(user_view(&before)), None);
            tx.commit().await.context("committing a user removal")?;
            Ok(true)
        })
    }

    /// Creates a portal account. False if one exists for this e-mail.
    pub async fn create_portal_account(
        &self,
        email: &str,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        let now = crate::now_rfc3339();
        with_pool!(self, p => sqlx::query(
            "INSERT INTO portal_accounts (email, password_hash, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (email) DO NOTHING",
        )
        .bind(email)
        .bind(password_hash)
        .bind(&now)
        .execute(p)
        .await
        .map(|r| r.rows_affected() == 1)
        .context("creating a portal account"))
    }

    /// The password hash of a portal account.
    pub async fn portal_account(&self, email: &str) -> Result<Option<String>, StoreError> {
        with_pool!(self, p => sqlx::query("SELECT password_hash FROM portal_accounts WHERE email = $1")
            .bind(email)
            .fetch_optional(p)
            .await
            .and_then(|r| r.map(|r| r.try_get::<String, _>(0)).transpose())
            .context("reading a portal account"))
    }

    /// Sets a portal account's password, creating the account if the developer had none
    /// (a developer made by an administrator claims their account through a reset).
    pub async fn set_portal_password(
        &self,
        email: &str,
        password_hash: &str,
    ) -> Result<(), StoreError> {
        let now = crate::now_rfc3339();
        with_pool!(self, p => sqlx::query(
            "INSERT INTO portal_accounts (email, password_hash, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (email) DO UPDATE SET password_hash = excluded.password_hash",
        )
        .bind(email)
        .bind(password_hash)
        .bind(&now)
        .execute(p)
        .await
        .map(|_| ())
        .context("setting a portal password"))
    }

    pub async fn delete_portal_account(&self, email: &str) -> Result<(), StoreError> {
        with_pool!(self, p => {
            sqlx::query("DELETE FROM web_sessions WHERE realm = 'portal' AND subject = $1")
                .bind(email)
                .execute(p)
                .await
                .context("ending a developer's sessions")?;
            sqlx::query("DELETE FROM portal_accounts WHERE email = $1")
                .bind(email)
                .execute(p)
                .await
                .map(|_| ())
                .context("removing a portal account")
        })
    }

    /// Stores a new session under the hash of its id.
    pub async fn create_session(
        &self,
        id_hash: &str,
        realm: &str,
        subject: &str,
        csrf: &str,
        ttl_secs: i64,
    ) -> Result<(), StoreError> {
        let now = unix_now();
        with_pool!(self, p => {
            // Expired sessions go as new ones come.
            sqlx::query("DELETE FROM web_sessions WHERE expires_at < $1")
                .bind(now)
                .execute(p)
                .await
                .context("pruning sessions")?;
            sqlx::query(
                "INSERT INTO web_sessions (id_hash, realm, subject, csrf, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id_hash)
            .bind(realm)
            .bind(subject)
            .bind(csrf)
            .bind(now)
            .bind(now + ttl_secs)
            .execute(p)
            .await
            .map(|_| ())
            .context("creating a session")
        })
    }

    /// The live (unexpired) session with this id hash in this realm.
    pub async fn session(
        &self,
        id_hash: &str,
        realm: &str,
    ) -> Result<Option<SessionRow>, StoreError> {
        with_pool!(self, p => sqlx::query(
            "SELECT realm, subject, csrf, created_at, expires_at FROM web_sessions \
             WHERE id_hash = $1 AND realm = $2 AND expires_at > $3",
        )
        .bind(id_hash)
        .bind(realm)
        .bind(unix_now())
        .fetch_optional(p)
        .await
        .and_then(|r| {
            r.map(|r| {
                Ok(SessionRow {
                    realm: r.try_get(0)?,
                    subject: r.try_get(1)?,
                    csrf: r.try_get(2)?,
                    created_at: r.try_get(3)?,
                    expires_at: r.try_get(4)?,
                })
            })
            .transpose()
        })
        .context("reading a session"))
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        with_pool!(self, p => sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(p)
            .await
            .map(|_| ())
            .context("ending a session"))
    }

    /// Ends every session of one subject (after a password change).
    pub async fn delete_sessions_of(&self, realm: &str, subject: &str) -> Result<(), StoreError> {
        with_pool!(self, p => sqlx::query("DELETE FROM web_sessions WHERE realm = $1 AND subject = $2")
            .bind(realm)
            .bind(subject)
            .execute(p)
            .await
            .map(|_| ())
            .context("ending sessions"))
    }

    /// Stores a password reset token's hash, valid for `ttl_secs`.
    pub async fn create_reset(
        &self,
        token_hash: &str,
        realm: &str,
        email: &str,
        ttl_secs: i64,
    ) -> Result<(), StoreError> {
        let now = unix_now();
        with_pool!(self, p => {
            sqlx::query("DELETE FROM password_resets WHERE expires_at < $1")
                .bind(now)
                .execute(p)
                .await
                .context("pruning password resets")?;
            sqlx::query(
                "INSERT INTO password_resets (token_hash, realm, email, expires_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(token_hash)
            .bind(realm)
            .bind(email)
            .bind(now + ttl_secs)
            .execute(p)
            .await
            .map(|_| ())
            .context("creating a password reset")
        })
    }

    /// Uses a reset token: answers its e-mail once, if it is unused and unexpired.
    pub async fn take_reset(
        &self,
        token_hash: &str,
        realm: &str,
    ) -> Result<Option<String>, StoreError> {
        let now = unix_now();
        with_pool!(self, p => sqlx::query(
            "UPDATE password_resets SET used_at = $1 WHERE token_hash = $2 AND realm = $3 \
             AND used_at IS NULL AND expires_at > $1 RETURNING email",
        )
        .bind(now)
        .bind(token_hash)
        .bind(realm)
        .fetch_optional(p)
        .await
        .and_then(|r| r.map(|r| r.try_get::<String, _>(0)).transpose())
        .context("using a password reset"))
    }
}
