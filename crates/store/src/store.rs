//! The [`Store`] and its configuration operations.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Row, SqlitePool};
use tollgate_model::{EntityKey, EntityKind, EntitySet, Plan};

use crate::audit::{Actor, log_change};
use crate::error::{Context, StoreError};

pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same code against whichever pool the store holds. The SQL is shared; only
/// the Rust types differ, so each arm is type-checked on its own.
macro_rules! with_pool {
    ($self:expr, $pool:ident => $body:expr) => {
        match &$self.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// Bumps the revision as the transaction's first write, which also takes the write lock
/// (the row lock on PostgreSQL), and yields the new revision.
macro_rules! bump_revision {
    ($tx:ident) => {
        sqlx::query(
            "UPDATE tollgate_meta SET value = value + 1 WHERE key = 'revision' RETURNING value",
        )
        .fetch_one(&mut *$tx)
        .await
        .and_then(|r| r.try_get::<i64, _>(0))
        .context("bumping the revision")?
    };
}
pub(crate) use bump_revision;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One row of the change log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChangeRecord {
    pub revision: i64,
    pub kind: String,
    pub name: String,
    pub op: String,
    pub actor: String,
    pub at: String,
}

pub struct Store {
    pub(crate) pool: Pool,
    /// Serialises writers inside this process; across processes the revision row lock
    /// (PostgreSQL) or the database write lock (SQLite) does.
    pub(crate) write: tokio::sync::Mutex<()>,
    /// Migrations ran and the audit log is sealed; false only for a store opened with
    /// [`Store::connect_lazy`] until [`Store::ensure_started`] succeeds.
    started: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish()
    }
}

impl Store {
    /// Opens `sqlite:PATH` / `sqlite://PATH` or `postgres://…` and applies migrations.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            Store::open_sqlite(Path::new(path)).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url).context("reading the PostgreSQL URL")?;
            Store::open_postgres(opts).await
        } else {
            Err(StoreError::UnsupportedUrl(url.to_string()))
        }
    }

    /// Opens (creating if needed) a SQLite database file.
    pub async fn open_sqlite(path: &Path) -> Result<Store, StoreError> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .context("opening the SQLite database")?;
        Store::start(Pool::Sqlite(pool)).await
    }

    /// Opens a PostgreSQL database with the given options (tests pass a `search_path`).
    pub async fn open_postgres(opts: PgConnectOptions) -> Result<Store, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(opts)
            .await
            .context("connecting to PostgreSQL")?;
        Store::start(Pool::Postgres(pool)).await
    }

    async fn start(pool: Pool) -> Result<Store, StoreError> {
        let store = Store {
            pool,
            write: tokio::sync::Mutex::new(()),
            started: std::sync::atomic::AtomicBool::new(false),
        };
        store.ensure_started().await?;
        Ok(store)
    }

    /// A PostgreSQL store whose connections are made when first needed: a node whose
    /// database is down at start serves its last configuration and reaches the database
    /// once it answers. Call [`Store::ensure_started`] before relying on the schema.
    pub fn connect_lazy(url: &str) -> Result<Store, StoreError> {
        let opts = PgConnectOptions::from_str(url).context("reading the PostgreSQL URL")?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(opts);
        Ok(Store {
            pool: Pool::Postgres(pool),
            write: tokio::sync::Mutex::new(()),
            started: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Runs the migrations and seals the audit log, once.
    pub async fn ensure_started(&self) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        if self.started.load(Ordering::Acquire) {
            return Ok(());
        }
        crate::migrate::run(&self.pool).await?;
        self.seal_unchained().await?;
        self.started.store(true, Ordering::Release);
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Succeeds when the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, p => {
            sqlx::query("SELECT 1").execute(p).await.context("checking the database")?;
        });
        Ok(())
    }

    /// The global configuration revision: bumped by every write.
    pub async fn revision(&self) -> Result<i64, StoreError> {
        with_pool!(self, p => sqlx::query("SELECT value FROM tollgate_meta WHERE key = 'revision'")
            .fetch_one(p)
            .await
            .and_then(|r| r.try_get::<i64, _>(0))
            .context("reading the revision"))
    }

    /// All configuration entities and the revision they are at, read consistently.
    pub async fn load(&self) -> Result<(i64, EntitySet), StoreError> {
        let rows: Vec<(String, String, String)>;
        let revision: i64;
        with_pool!(self, p => {
            let mut tx = p.begin().await.context("starting a read")?;
            if self.backend() == Backend::Postgres {
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    .execute(&mut *tx)
                    .await
                    .context("starting a read")?;
            }
            revision = sqlx::query("SELECT value FROM tollgate_meta WHERE key = 'revision'")
                .fetch_one(&mut *tx)
                .await
                .and_then(|r| r.try_get::<i64, _>(0))
                .context("reading the revision")?;
            rows = sqlx::query("SELECT kind, name, body FROM entities ORDER BY kind, name")
                .fetch_all(&mut *tx)
                .await
                .context("reading entities")?
                .into_iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
                .collect::<Result<_, sqlx::Error>>()
                .context("reading entities")?;
            tx.commit().await.context("finishing a read")?;
        });
        let mut set = EntitySet::default();
        for (kind, name, body) in rows {
            let kind = EntityKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown entity kind `{kind}`")))?;
            let body = serde_json::from_str(&body)
                .map_err(|e| StoreError::Corrupt(format!("{} {name}: {e}", kind.as_str())))?;
            set.0.insert(EntityKey::new(kind, name), body);
        }
        Ok((revision, set))
    }

    /// Writes a plan in one transaction: bumps the revision, writes every entity and
    /// appends the change log. With `expected`, fails with [`StoreError::Conflict`] if
    /// someone else wrote since that revision. An empty plan writes nothing.
    pub async fn commit(
        &self,
        plan: &Plan,
        actor: &Actor<'_>,
        expected: Option<i64>,
    ) -> Result<i64, StoreError> {
        if plan.is_empty() {
            let current = self.revision().await?;
            if let Some(expected) = expected
                && expected != current
            {
                return Err(StoreError::Conflict {
                    expected,
                    actual: current,
                });
            }
            return Ok(current);
        }
        let _guard = self.write.lock().await;
        let now = crate::now_rfc3339();
        with_pool!(self, p => {
            let mut tx = p.begin().await.context("starting a change")?;
            let revision = bump_revision!(tx);
            if let Some(expected) = expected
                && revision != expected + 1
            {
                return Err(StoreError::Conflict { expected, actual: revision - 1 });
            }
            for change in &plan.changes {
                let kind = change.key.kind.as_str();
                let before: Option<String> = sqlx::query("SELECT body FROM entities WHERE kind = $1 AND name = $2")
                    .bind(kind)
                    .bind(&change.key.name)
                    .fetch_optional(&mut *tx)
                    .await
                    .and_then(|r| r.map(|r| r.try_get::<String, _>(0)).transpose())
                    .context("reading an entity before changing it")?;
                match &change.body {
                    Some(body) => {
                        sqlx::query(
                            "INSERT INTO entities (kind, name, body, revision, updated_at) VALUES ($1, $2, $3, $4, $5) \
                             ON CONFLICT (kind, name) DO UPDATE SET body = excluded.body, revision = excluded.revision, updated_at = excluded.updated_at",
                        )
                        .bind(kind)
                        .bind(&change.key.name)
                        .bind(body.to_string())
                        .bind(revision)
                        .bind(&now)
                        .execute(&mut *tx)
                        .await
                        .context("writing an entity")?;
                    }
                    None => {
                        sqlx::query("DELETE FROM entities WHERE kind = $1 AND name = $2")
                            .bind(kind)
                            .bind(&change.key.name)
                            .execute(&mut *tx)
                            .await
                            .context("deleting an entity")?;
                    }
                }
                let after = change.body.as_ref().map(|b| b.to_string());
                log_change!(tx, revision, kind, &change.key.name, change.op.as_str(), actor, &now, before, after);
            }
            tx.commit().await.context("committing a change")?;
            Ok(revision)
        })
        .inspect(|revision| self.announce(*revision))
    }

    /// Tells every node listening on PostgreSQL that the configuration changed (they
    /// also poll, so a lost notification only delays a change by up to a second).
    fn announce(&self, revision: i64) {
        if let Pool::Postgres(p) = &self.pool {
            let p = p.clone();
            tokio::spawn(async move {
                let sent = sqlx::query("SELECT pg_notify('tollgate_config', $1)")
                    .bind(revision.to_string())
                    .execute(&p)
                    .await;
                if let Err(e) = sent {
                    tracing::debug!(error = %e, "cannot announce a configuration change");
                }
            });
        }
    }

    /// Wakes the receiver whenever any node commits a configuration change (PostgreSQL
    /// `LISTEN tollgate_config`; the listener reconnects by itself). `None` on SQLite, where
    /// one node owns the database.
    pub fn listen_changes(&self) -> Option<tokio::sync::mpsc::Receiver<()>> {
        let Pool::Postgres(pool) = &self.pool else {
            return None;
        };
        let pool = pool.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            loop {
                let listener = async {
                    let mut l = sqlx::postgres::PgListener::connect_with(&pool).await?;
                    l.listen("tollgate_config").await?;
                    Ok::<_, sqlx::Error>(l)
                };
                let mut listener = match listener.await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot listen for configuration changes; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                loop {
                    match listener.recv().await {
                        // A full channel already holds a wake-up: changes coalesce.
                        Ok(_) => {
                            if let Err(tokio::sync::mpsc::error::TrySendError::Closed(())) =
                                tx.try_send(())
                            {
                                return;
                            }
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "configuration change listener lost; reconnecting");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            break;
                        }
                    }
                }
            }
        });
        Some(rx)
    }

    /// Change log rows after `since`, oldest first, at most `limit`.
    pub async fn changes(&self, since: i64, limit: i64) -> Result<Vec<ChangeRecord>, StoreError> {
        with_pool!(self, p => sqlx::query(
            "SELECT revision, kind, name, op, actor, at FROM change_log WHERE revision > $1 ORDER BY id LIMIT $2",
        )
        .bind(since)
        .bind(limit)
        .fetch_all(p)
        .await
        .context("reading the change log")?
        .into_iter()
        .map(|r| {
            Ok(ChangeRecord {
                revision: r.try_get(0)?,
                kind: r.try_get(1)?,
                name: r.try_get(2)?,
                op: r.try_get(3)?,
                actor: r.try_get(4)?,
                at: r.try_get(5)?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .context("reading the change log"))
    }
}
