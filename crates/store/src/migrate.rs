//! Schema migrations, one list per backend, applied in order at start. Each runs in its
//! own transaction; on PostgreSQL an advisory lock keeps nodes starting together from
//! running the same migration twice.

use sqlx::{Executor, Row};

use crate::error::StoreError;
use crate::store::Pool;

struct Migration {
    version: i64,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sqlite: include_str!("../migrations/sqlite/0001_config.sql"),
        postgres: include_str!("../migrations/postgres/0001_config.sql"),
    },
    Migration {
        version: 2,
        sqlite: include_str!("../migrations/sqlite/0002_quota.sql"),
        postgres: include_str!("../migrations/postgres/0002_quota.sql"),
    },
    Migration {
        version: 3,
        sqlite: include_str!("../migrations/sqlite/0003_usage.sql"),
        postgres: include_str!("../migrations/postgres/0003_usage.sql"),
    },
    Migration {
        version: 4,
        sqlite: include_str!("../migrations/sqlite/0004_invoices.sql"),
        postgres: include_str!("../migrations/postgres/0004_invoices.sql"),
    },
    Migration {
        version: 5,
        sqlite: include_str!("../migrations/sqlite/0005_notify.sql"),
        postgres: include_str!("../migrations/postgres/0005_notify.sql"),
    },
    Migration {
        version: 6,
        sqlite: include_str!("../migrations/sqlite/0006_analytics.sql"),
        postgres: include_str!("../migrations/postgres/0006_analytics.sql"),
    },
    Migration {
        version: 7,
        sqlite: include_str!("../migrations/sqlite/0007_rollups.sql"),
        postgres: include_str!("../migrations/postgres/0007_rollups.sql"),
    },
    Migration {
        version: 8,
        sqlite: include_str!("../migrations/sqlite/0008_alerts.sql"),
        postgres: include_str!("../migrations/postgres/0008_alerts.sql"),
    },
    Migration {
        version: 9,
        sqlite: include_str!("../migrations/sqlite/0009_audit.sql"),
        postgres: include_str!("../migrations/postgres/0009_audit.sql"),
    },
    Migration {
        version: 10,
        sqlite: include_str!("../migrations/sqlite/0010_nodes.sql"),
        postgres: include_str!("../migrations/postgres/0010_nodes.sql"),
    },
    Migration {
        version: 11,
        sqlite: include_str!("../migrations/sqlite/0011_accounts.sql"),
        postgres: include_str!("../migrations/postgres/0011_accounts.sql"),
    },
    Migration {
        version: 12,
        sqlite: include_str!("../migrations/sqlite/0012_teams_scopes.sql"),
        postgres: include_str!("../migrations/postgres/0012_teams_scopes.sql"),
    },
];

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS tollgate_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)";

macro_rules! run_migrations {
    ($pool:expr, $sql:ident, $lock:expr) => {{
        $pool
            .execute(CREATE_TABLE)
            .await
            .map_err(|source| StoreError::Migration { version: 0, source })?;
        for m in MIGRATIONS {
            let fail = |source| StoreError::Migration {
                version: m.version,
                source,
            };
            let mut tx = $pool.begin().await.map_err(fail)?;
            if let Some(lock) = $lock {
                sqlx::query(lock).execute(&mut *tx).await.map_err(fail)?;
            }
            let done = sqlx::query("SELECT COUNT(*) FROM tollgate_migrations WHERE version = $1")
                .bind(m.version)
                .fetch_one(&mut *tx)
                .await
                .and_then(|row| row.try_get::<i64, _>(0))
                .map_err(fail)?;
            if done > 0 {
                continue;
            }
            sqlx::raw_sql(m.$sql)
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
            sqlx::query("INSERT INTO tollgate_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(m.version)
                .bind(crate::now_rfc3339())
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
            tx.commit().await.map_err(fail)?;
            tracing::info!(version = m.version, "applied store migration");
        }
        Ok(())
    }};
}

pub(crate) async fn run(pool: &Pool) -> Result<(), StoreError> {
    match pool {
        Pool::Sqlite(p) => run_migrations!(p, sqlite, None::<&str>),
        Pool::Postgres(p) => {
            run_migrations!(p, postgres, Some("SELECT pg_advisory_xact_lock(727100)"))
        }
    }
}
