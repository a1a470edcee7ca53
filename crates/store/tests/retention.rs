//! Retention of notices, webhook deliveries and alerts on both backends: what is past its
//! time goes, what is recent, still pending or still blocking stays.
//!
//! PostgreSQL comes from `TOLLGATE_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`); unreachable, its half is skipped with a
//! printed reason, except under `CI=true`.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use tollgate_store::{AlertRow, Attempt, Delivery, Notice, Store};

fn notice(id: &str, at: i64) -> Notice {
    Notice {
        id: id.into(),
        developer: "dev@example.com".into(),
        app: "app".into(),
        kind: "quota".into(),
        message: "m".into(),
        body: "{}".into(),
        created_at: at,
    }
}

fn delivery(id: &str, at: i64, status: &str) -> Delivery {
    Delivery {
        id: id.into(),
        webhook: "hook".into(),
        event: "quota.reached".into(),
        dedupe: id.into(),
        body: "{}".into(),
        created_at: at,
        attempts: 1,
        next_attempt_at: at,
        status: status.into(),
        last_error: None,
    }
}

fn alert(id: &str, at: i64, blocked_until: Option<i64>) -> AlertRow {
    AlertRow {
        id: id.into(),
        detector: "auth_failures".into(),
        subject_kind: "address".into(),
        subject: "192.0.2.1".into(),
        api: "a".into(),
        observed: 30,
        threshold: 20,
        window_seconds: 60,
        blocked_until,
        at,
        node: "n".into(),
        message: "m".into(),
    }
}

async fn retention_contract(store: &Store) {
    let now = 1_000_000;
    for n in [notice("old", now - 500), notice("new", now - 10)] {
        assert!(store.add_notice(&n).await.unwrap());
    }
    store
        .enqueue_deliveries(&[
            delivery("old-done", now - 500, "delivered"),
            delivery("old-failed", now - 500, "failed"),
            delivery("old-pending", now - 500, "pending"),
            delivery("new-done", now - 10, "delivered"),
        ])
        .await
        .unwrap();
    for (id, how) in [
        ("old-done", Attempt::Delivered),
        ("new-done", Attempt::Delivered),
        (
            "old-failed",
            Attempt::GaveUp {
                error: "410".into(),
            },
        ),
    ] {
        store.finish_delivery(id, &how).await.unwrap();
    }
    for a in [
        alert("old", now - 500, None),
        alert("old-blocking", now - 500, Some(now + 60)),
        alert("new", now - 10, None),
    ] {
        store.add_alert(&a).await.unwrap();
    }
    let pruned = store
        .prune_records(now - 100, now - 100, now - 100, now)
        .await
        .unwrap();
    assert_eq!(pruned.notices, 1);
    assert_eq!(pruned.webhook_deliveries, 2, "pending deliveries stay");
    assert_eq!(pruned.alerts, 1, "an alert still blocking stays");
    let notices = store.notices(None, None, 100).await.unwrap();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].id, "new");
    let alerts = store.alerts(None, 0, 100).await.unwrap();
    let mut ids: Vec<&str> = alerts.iter().map(|a| a.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["new", "old-blocking"]);
    // A second pass finds nothing more.
    let again = store
        .prune_records(now - 100, now - 100, now - 100, now)
        .await
        .unwrap();
    assert_eq!(again.total(), 0);
}

#[tokio::test]
async fn sqlite_retention() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("tollgate.db"))
        .await
        .unwrap();
    retention_contract(&store).await;
}

#[tokio::test]
async fn postgres_retention() {
    let url = std::env::var("TOLLGATE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("t_retention_{}", std::process::id());
    let admin = PgConnectOptions::from_str(&url).unwrap();
    let setup = async {
        let pool = sqlx::PgPool::connect_with(admin.clone()).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE"
        )))
        .execute(&pool)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&pool)
            .await?;
        Ok::<_, sqlx::Error>(pool)
    };
    let pool = match setup.await {
        Ok(pool) => pool,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("PostgreSQL at {url} is required under CI=true: {e}")
        }
        Err(e) => {
            eprintln!("skipping the PostgreSQL retention test: {url} unreachable ({e})");
            return;
        }
    };
    let opts = admin.options([("search_path", schema.as_str())]);
    let store = Store::open_postgres(opts).await.unwrap();
    retention_contract(&store).await;
    drop(store);
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(&pool)
    .await;
}
