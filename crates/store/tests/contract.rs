//! One contract, two backends: every test here runs against SQLite and PostgreSQL.
//!
//! PostgreSQL comes from `TOLLGATE_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`). When it is unreachable the PostgreSQL half
//! is skipped with a printed reason, except under `CI=true`, where it must run.

use std::str::FromStr;

use serde_json::json;
use sqlx::postgres::PgConnectOptions;
use tollgate_model::{Change, ChangeOp, EntityKey, EntityKind, EntitySet, Plan};
use tollgate_store::{Actor, Store, StoreError, TokenRecord};

fn pg_url() -> String {
    std::env::var("TOLLGATE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

async fn sqlite() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("tollgate.db"))
        .await
        .unwrap();
    (store, dir)
}

/// A PostgreSQL store in a fresh schema of its own, or None (skipped) outside CI.
async fn postgres(test: &str) -> Option<Store> {
    let url = pg_url();
    let schema = format!("t_{}_{}", test, std::process::id());
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
        Ok::<_, sqlx::Error>(())
    };
    if let Err(e) = setup.await {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("PostgreSQL at {url} is required under CI=true: {e}");
        }
        eprintln!("skipping the PostgreSQL half of `{test}`: {url} unreachable ({e})");
        return None;
    }
    let opts = admin.options([("search_path", schema.as_str())]);
    Some(Store::open_postgres(opts).await.unwrap())
}

/// Removes a test's schema once the test passed.
async fn drop_schema(test: &str) {
    let schema = format!("t_{}_{}", test, std::process::id());
    if let Ok(pool) =
        sqlx::PgPool::connect_with(PgConnectOptions::from_str(&pg_url()).unwrap()).await
    {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE"
        )))
        .execute(&pool)
        .await;
    }
}

fn change(op: ChangeOp, kind: EntityKind, name: &str, body: Option<serde_json::Value>) -> Change {
    Change {
        op,
        key: EntityKey::new(kind, name),
        body,
    }
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let (store, _dir) = super::sqlite().await;
                super::$name(store).await;
            }
            #[tokio::test]
            async fn postgres() {
                if let Some(store) = super::postgres(stringify!($name)).await {
                    super::$name(store).await;
                    super::drop_schema(stringify!($name)).await;
                }
            }
        }
    )*};
}

contract!(
    starts_empty_at_revision_zero,
    commit_bumps_revision_once_and_logs_each_entity,
    load_returns_what_was_committed,
    stale_expected_revision_is_a_conflict_and_writes_nothing,
    empty_plan_writes_nothing,
    concurrent_commits_get_distinct_revisions,
    tokens_are_kept_hashed_and_revocable,
    quota_counters_add_up_and_stay_in_their_period,
    usage_rows_are_absolute_per_node_and_add_up_across_nodes,
    an_invoice_run_replaces_its_period_only,
    webhook_deliveries_are_queued_once_and_claimed_by_one_worker,
    notices_are_stored_once_and_credit_debits_are_replaced_per_period,
    hourly_usage_adds_up_minutes_and_nodes,
    analytics_rows_are_absolute_per_node_and_filterable,
    analytics_roll_up_into_hours_and_days_without_losing_or_double_counting,
    alerts_are_listed_newest_first_and_blocks_can_be_lifted,
    app_activity_spans_minutes_hours_and_days,
    nodes_heartbeat_replace_their_row_and_are_pruned,
);

async fn nodes_heartbeat_replace_their_row_and_are_pruned(store: Store) {
    use tollgate_store::NodeRow;
    let row = |name: &str, at: i64, revision: i64| NodeRow {
        name: name.into(),
        version: "1.0.0".into(),
        started_at: 100,
        heartbeat_at: at,
        revision,
    };
    store.heartbeat(&row("eu-1", 110, 3)).await.unwrap();
    store.heartbeat(&row("us-1", 120, 3)).await.unwrap();
    store.heartbeat(&row("eu-1", 130, 4)).await.unwrap();
    let nodes = store.nodes(0).await.unwrap();
    assert_eq!(nodes, vec![row("eu-1", 130, 4), row("us-1", 120, 3)]);
    assert_eq!(store.nodes(125).await.unwrap(), vec![row("eu-1", 130, 4)]);
    assert_eq!(store.prune_nodes(125).await.unwrap(), 1);
    assert_eq!(store.nodes(0).await.unwrap().len(), 1);
}

async fn app_activity_spans_minutes_hours_and_days(store: Store) {
    use tollgate_store::{AggregateRow, AppActivity, Rollup};
    let row = |minute: i64, app: &str, class: i16| AggregateRow {
        minute,
        api: "orders".into(),
        version: "v1".into(),
        route: "/v1".into(),
        app: app.into(),
        class,
        requests: 1,
        total: String::new(),
        gateway: String::new(),
        upstream: String::new(),
    };
    let day = 20_000 * 1440;
    store
        .put_aggregates(
            "n1",
            &[
                row(day + 10, "web", 2),
                row(day + 3000, "web", 2),
                row(day + 5, "cli", 4),
                row(day + 7000, "cli", 2),
                row(day + 8, "", 2),
            ],
        )
        .await
        .unwrap();
    // Part of it rolled up: still found, at its hour.
    store
        .roll_up(Rollup::MinutesToHours, day + 60)
        .await
        .unwrap();
    let got = store.app_activity(Some("orders")).await.unwrap();
    assert_eq!(
        got,
        vec![
            AppActivity {
                app: "cli".into(),
                first: day + 7000,
                last: day + 7000
            },
            AppActivity {
                app: "web".into(),
                first: day,
                last: day + 3000
            },
        ]
    );
    assert!(store.app_activity(Some("other")).await.unwrap().is_empty());
}

async fn alerts_are_listed_newest_first_and_blocks_can_be_lifted(store: Store) {
    let alert =
        |id: &str, detector: &str, at: i64, blocked_until: Option<i64>| tollgate_store::AlertRow {
            id: id.into(),
            detector: detector.into(),
            subject_kind: "address".into(),
            subject: "203.0.113.7".into(),
            api: "orders".into(),
            observed: 5,
            threshold: 5,
            window_seconds: 60,
            blocked_until,
            at,
            node: "n1".into(),
            message: "m".into(),
        };
    store
        .add_alert(&alert("a1", "auth_failures", 100, Some(700)))
        .await
        .unwrap();
    store
        .add_alert(&alert("a2", "enumeration", 200, None))
        .await
        .unwrap();
    // The same id again is ignored.
    store
        .add_alert(&alert("a1", "auth_failures", 999, None))
        .await
        .unwrap();
    let all = store.alerts(None, 0, 10).await.unwrap();
    assert_eq!(
        all.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        ["a2", "a1"]
    );
    assert_eq!(all[1].blocked_until, Some(700));
    assert_eq!(
        store
            .alerts(Some("enumeration"), 0, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store.alerts(None, 300, 10).await.unwrap().is_empty());
    assert_eq!(store.active_blocks(500).await.unwrap().len(), 1);
    assert!(store.active_blocks(700).await.unwrap().is_empty());
    assert!(store.lift_block("a1", 400).await.unwrap());
    assert!(store.active_blocks(500).await.unwrap().is_empty());
    assert!(!store.lift_block("nope", 400).await.unwrap());
    // Lifting never extends a block that already ended.
    assert!(store.lift_block("a1", 650).await.unwrap());
    assert_eq!(
        store.alerts(Some("auth_failures"), 0, 1).await.unwrap()[0].blocked_until,
        Some(400)
    );
}

async fn analytics_roll_up_into_hours_and_days_without_losing_or_double_counting(store: Store) {
    use tollgate_store::{AggregateFilter, AggregateRow, Rollup};
    let row = |minute: i64, app: &str, requests: u64, bucket: u16| AggregateRow {
        minute,
        api: "orders".into(),
        version: "v1".into(),
        route: "/v1".into(),
        app: app.into(),
        class: 2,
        requests,
        total: format!("{bucket}:{requests}"),
        gateway: String::new(),
        upstream: String::new(),
    };
    let day = 20_000 * 1440; // a day's first minute
    store
        .put_aggregates(
            "n1",
            &[row(day + 5, "web", 3, 10), row(day + 65, "web", 2, 20)],
        )
        .await
        .unwrap();
    store
        .put_aggregates("n2", &[row(day + 6, "web", 4, 10), row(day + 7, "", 1, 30)])
        .await
        .unwrap();
    let all = AggregateFilter::default();
    let total = |rows: &[AggregateRow]| rows.iter().map(|r| r.requests).sum::<u64>();
    let before = store.aggregates(0, i64::MAX / 2, &all).await.unwrap();
    assert_eq!(total(&before), 10);
    // Minutes older than `day + 120` roll into their hours, one hour per call.
    assert_eq!(
        store
            .roll_up(Rollup::MinutesToHours, day + 120)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        store
            .roll_up(Rollup::MinutesToHours, day + 120)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .roll_up(Rollup::MinutesToHours, day + 120)
            .await
            .unwrap(),
        0
    );
    let hours = store.aggregates(0, i64::MAX / 2, &all).await.unwrap();
    assert_eq!(total(&hours), 10);
    assert_eq!(hours.len(), 3, "{hours:?}");
    let web0 = hours
        .iter()
        .find(|r| r.minute == day && r.app == "web")
        .unwrap();
    assert_eq!(web0.requests, 7);
    assert_eq!(web0.total, "10:7", "both nodes' histograms merged");
    // A late minute of an hour already rolled merges into it.
    store
        .put_aggregates("n3", &[row(day + 9, "web", 5, 10)])
        .await
        .unwrap();
    assert_eq!(
        store
            .roll_up(Rollup::MinutesToHours, day + 120)
            .await
            .unwrap(),
        1
    );
    let hours = store.aggregates(0, i64::MAX / 2, &all).await.unwrap();
    assert_eq!(total(&hours), 15);
    assert_eq!(
        hours
            .iter()
            .find(|r| r.minute == day && r.app == "web")
            .unwrap()
            .total,
        "10:12"
    );
    // Hours roll into the day; filters still apply.
    assert_eq!(
        store
            .roll_up(Rollup::HoursToDays, day + 1440)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        store
            .roll_up(Rollup::HoursToDays, day + 1440)
            .await
            .unwrap(),
        0
    );
    let days = store.aggregates(0, i64::MAX / 2, &all).await.unwrap();
    assert_eq!(total(&days), 15);
    assert_eq!(days.len(), 2);
    let web = AggregateFilter {
        app: Some("web".into()),
        ..AggregateFilter::default()
    };
    let web_days = store.aggregates(day, day + 1, &web).await.unwrap();
    assert_eq!(total(&web_days), 14);
    assert_eq!(web_days[0].total, "10:12,20:2");
    assert_eq!(store.expire_analytics(day + 1).await.unwrap(), 2);
    assert!(
        store
            .aggregates(0, i64::MAX / 2, &all)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn analytics_rows_are_absolute_per_node_and_filterable(store: Store) {
    use tollgate_store::{AggregateFilter, AggregateRow};
    let row = |minute: i64, app: &str, class: i16, requests: u64| AggregateRow {
        minute,
        api: "orders".into(),
        version: "v1".into(),
        route: "/v1".into(),
        app: app.into(),
        class,
        requests,
        total: format!("10:{requests}"),
        gateway: String::new(),
        upstream: String::new(),
    };
    store
        .put_aggregates(
            "n1",
            &[
                row(100, "web", 2, 3),
                row(100, "", 4, 1),
                row(101, "web", 5, 2),
            ],
        )
        .await
        .unwrap();
    // A retried flush rewrites the row: no double count.
    store
        .put_aggregates("n1", &[row(100, "web", 2, 4)])
        .await
        .unwrap();
    store
        .put_aggregates("n2", &[row(100, "web", 2, 5)])
        .await
        .unwrap();
    let all = store
        .aggregates(0, 1000, &AggregateFilter::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 4);
    let web2: u64 = all
        .iter()
        .filter(|r| r.app == "web" && r.class == 2)
        .map(|r| r.requests)
        .sum();
    assert_eq!(web2, 9);
    let errors = store
        .aggregates(
            0,
            1000,
            &AggregateFilter {
                class: Some(5),
                app: Some("web".into()),
                ..AggregateFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(errors, vec![row(101, "web", 5, 2)]);
    assert!(
        store
            .aggregates(101, 101, &AggregateFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .aggregates(101, 102, &AggregateFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );
}

fn delivery(id: &str, dedupe: &str, at: i64) -> tollgate_store::Delivery {
    tollgate_store::Delivery {
        id: id.into(),
        webhook: "billing".into(),
        event: "invoice.finalized".into(),
        dedupe: dedupe.into(),
        body: "{}".into(),
        created_at: at,
        attempts: 0,
        next_attempt_at: at,
        status: "pending".into(),
        last_error: None,
    }
}

async fn webhook_deliveries_are_queued_once_and_claimed_by_one_worker(store: Store) {
    use tollgate_store::Attempt;
    let queued = store
        .enqueue_deliveries(&[delivery("d1", "x", 100), delivery("d2", "y", 100)])
        .await
        .unwrap();
    assert_eq!(queued, 2);
    // The same event raised again (another node, a re-run) queues nothing.
    let again = store
        .enqueue_deliveries(&[delivery("d3", "x", 101)])
        .await
        .unwrap();
    assert_eq!(again, 0);
    assert!(store.claim_deliveries(99, 30, 10).await.unwrap().is_empty());
    let first = store.claim_deliveries(100, 30, 1).await.unwrap();
    assert_eq!(first.len(), 1);
    // A claimed delivery is not handed out again while its lease runs.
    let second = store.claim_deliveries(100, 30, 10).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_ne!(first[0].id, second[0].id);
    assert!(
        store
            .claim_deliveries(120, 30, 10)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .finish_delivery(&first[0].id, &Attempt::Delivered)
        .await
        .unwrap();
    store
        .finish_delivery(
            &second[0].id,
            &Attempt::Retry {
                at: 200,
                error: "503".into(),
            },
        )
        .await
        .unwrap();
    // The lease ran out: only the retried one comes back, at its retry time.
    assert!(
        store
            .claim_deliveries(150, 30, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let retried = store.claim_deliveries(200, 30, 10).await.unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].attempts, 1);
    assert_eq!(retried[0].last_error.as_deref(), Some("503"));
    store
        .finish_delivery(
            &retried[0].id,
            &Attempt::GaveUp {
                error: "gone".into(),
            },
        )
        .await
        .unwrap();
    let failed = store.deliveries(Some("failed"), 10).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(store.deliveries(None, 10).await.unwrap().len(), 2);
    assert_eq!(
        store.deliveries(Some("delivered"), 10).await.unwrap().len(),
        1
    );
}

async fn notices_are_stored_once_and_credit_debits_are_replaced_per_period(store: Store) {
    let notice = |id: &str, dev: &str, at: i64| tollgate_store::Notice {
        id: id.into(),
        developer: dev.into(),
        app: "web".into(),
        kind: "quota.warning".into(),
        message: "80%".into(),
        body: "{}".into(),
        created_at: at,
    };
    assert!(
        store
            .add_notice(&notice("n1", "a@x.test", 1))
            .await
            .unwrap()
    );
    assert!(
        !store
            .add_notice(&notice("n1", "a@x.test", 2))
            .await
            .unwrap()
    );
    assert!(
        store
            .add_notice(&notice("n2", "a@x.test", 3))
            .await
            .unwrap()
    );
    assert!(
        store
            .add_notice(&notice("n3", "b@x.test", 4))
            .await
            .unwrap()
    );
    let mine = store.notices(Some("a@x.test"), None, 10).await.unwrap();
    assert_eq!(
        mine.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(),
        ["n2", "n1"]
    );
    assert_eq!(store.notices(None, Some("web"), 10).await.unwrap().len(), 3);

    let entry = |id: &str, period: &str, kind: &str, amount: &str| tollgate_store::CreditEntry {
        id: id.into(),
        subscription: "web:orders".into(),
        period: period.into(),
        kind: kind.into(),
        amount: amount.into(),
        note: String::new(),
        created_at: if kind == "topup" { 10 } else { 20 },
    };
    store
        .add_credit(&entry("t1", "2026-10", "topup", "100.00"))
        .await
        .unwrap();
    store
        .replace_invoice_debits("2026-10", &[entry("i1", "2026-10", "invoice", "-30.00")])
        .await
        .unwrap();
    store
        .replace_invoice_debits("2026-10", &[entry("i2", "2026-10", "invoice", "-35.00")])
        .await
        .unwrap();
    let all = store.credit_entries(Some("web:orders")).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.amount.as_str()).collect::<Vec<_>>(),
        ["100.00", "-35.00"]
    );
    assert!(
        store
            .credit_entries(Some("other:orders"))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn hourly_usage_adds_up_minutes_and_nodes(store: Store) {
    let row = |s: &str, m: i64, r: u64, b: u64| (s.to_string(), m, r, b);
    store
        .put_usage(
            "n1",
            &[
                row("a:p", 600, 2, 1),
                row("a:p", 659, 3, 3),
                row("a:p", 660, 1, 1),
            ],
        )
        .await
        .unwrap();
    store
        .put_usage("n2", &[row("a:p", 601, 5, 5)])
        .await
        .unwrap();
    let hours = store.usage_hours(0, 10_000).await.unwrap();
    let got: Vec<_> = hours
        .iter()
        .map(|h| (h.hour, h.requests, h.billable))
        .collect();
    assert_eq!(got, [(600, 10, 9), (660, 1, 1)]);
}

async fn an_invoice_run_replaces_its_period_only(store: Store) {
    let row = |id: &str, period: &str, app: &str| tollgate_store::InvoiceRow {
        id: id.into(),
        period: period.into(),
        app: app.into(),
        product: "orders".into(),
        body: format!("{{\"id\":\"{id}\"}}"),
    };
    store
        .replace_invoices("2026-10", &[row("a", "2026-10", "one")])
        .await
        .unwrap();
    store
        .replace_invoices(
            "2026-11",
            &[row("b", "2026-11", "two"), row("c", "2026-11", "one")],
        )
        .await
        .unwrap();
    store
        .replace_invoices("2026-11", &[row("c", "2026-11", "one")])
        .await
        .unwrap();
    let nov = store.invoices("2026-11").await.unwrap();
    assert_eq!(nov, vec![row("c", "2026-11", "one")]);
    assert_eq!(store.invoices("2026-10").await.unwrap().len(), 1);
    assert_eq!(
        store.invoice("a").await.unwrap(),
        Some(row("a", "2026-10", "one"))
    );
    assert_eq!(store.invoice("b").await.unwrap(), None);
}

async fn usage_rows_are_absolute_per_node_and_add_up_across_nodes(store: Store) {
    let row = |s: &str, m: i64, r: u64, b: u64| (s.to_string(), m, r, b);
    store
        .put_usage(
            "n1",
            &[row("one:orders", 100, 3, 2), row("one:orders", 101, 1, 1)],
        )
        .await
        .unwrap();
    // A retried flush writes the same rows: nothing is counted twice.
    store
        .put_usage("n1", &[row("one:orders", 100, 3, 2)])
        .await
        .unwrap();
    store
        .put_usage(
            "n2",
            &[row("one:orders", 100, 5, 5), row("one_x:orders", 100, 7, 7)],
        )
        .await
        .unwrap();
    let totals = store.usage("one:", 100, 102).await.unwrap();
    assert_eq!(
        totals,
        vec![tollgate_store::UsageTotal {
            subscription: "one:orders".into(),
            requests: 9,
            billable: 8
        }]
    );
    // The range is half-open.
    let totals = store.usage("one:", 101, 102).await.unwrap();
    assert_eq!(totals[0].requests, 1);
    assert!(store.usage("two:", 0, 1000).await.unwrap().is_empty());
}

async fn quota_counters_add_up_and_stay_in_their_period(store: Store) {
    let d = |c: &str, p: &str, n: u64| (c.to_string(), p.to_string(), n);
    let totals = store
        .add_quota_usage(&[d("q|app:a", "2026-11", 5), d("q|app:b", "2026-11", 1)])
        .await
        .unwrap();
    assert_eq!(totals, vec![5, 1]);
    let totals = store
        .add_quota_usage(&[d("q|app:a", "2026-11", 3), d("q|app:a", "2026-12", 2)])
        .await
        .unwrap();
    assert_eq!(totals, vec![8, 2]);
    let mut rows = store.quota_usage(&["2026-11".to_string()]).await.unwrap();
    rows.sort();
    assert_eq!(
        rows,
        vec![d("q|app:a", "2026-11", 8), d("q|app:b", "2026-11", 1)]
    );
    // Counters are not configuration: the revision does not move.
    assert_eq!(store.revision().await.unwrap(), 0);
}

async fn starts_empty_at_revision_zero(store: Store) {
    assert_eq!(store.revision().await.unwrap(), 0);
    let (rev, set) = store.load().await.unwrap();
    assert_eq!(rev, 0);
    assert!(set.0.is_empty());
    store.ping().await.unwrap();
}

async fn commit_bumps_revision_once_and_logs_each_entity(store: Store) {
    let plan = Plan {
        changes: vec![
            change(
                ChangeOp::Create,
                EntityKind::Upstream,
                "a",
                Some(json!({"name": "a"})),
            ),
            change(
                ChangeOp::Create,
                EntityKind::Upstream,
                "b",
                Some(json!({"name": "b"})),
            ),
        ],
    };
    let rev = store
        .commit(&plan, &Actor::local("alice"), Some(0))
        .await
        .unwrap();
    assert_eq!(rev, 1);
    let log = store.changes(0, 100).await.unwrap();
    assert_eq!(log.len(), 2);
    assert!(log.iter().all(|c| c.revision == 1
        && c.actor == "alice"
        && c.op == "create"
        && c.kind == "upstream"));
    assert!(!log[0].at.is_empty());
    let del = Plan {
        changes: vec![change(ChangeOp::Delete, EntityKind::Upstream, "a", None)],
    };
    assert_eq!(
        store
            .commit(&del, &Actor::local("bob"), None)
            .await
            .unwrap(),
        2
    );
    let log = store.changes(1, 100).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (
            log[0].op.as_str(),
            log[0].name.as_str(),
            log[0].actor.as_str()
        ),
        ("delete", "a", "bob")
    );
}

async fn load_returns_what_was_committed(store: Store) {
    let body = json!({"name": "orders", "title": "Orders — ünïcode"});
    let plan = Plan {
        changes: vec![change(
            ChangeOp::Create,
            EntityKind::Api,
            "orders",
            Some(body.clone()),
        )],
    };
    store.commit(&plan, &Actor::local("t"), None).await.unwrap();
    let updated = json!({"name": "orders", "title": "Orders v2"});
    let plan = Plan {
        changes: vec![change(
            ChangeOp::Update,
            EntityKind::Api,
            "orders",
            Some(updated.clone()),
        )],
    };
    store.commit(&plan, &Actor::local("t"), None).await.unwrap();
    let (rev, set) = store.load().await.unwrap();
    assert_eq!(rev, 2);
    assert_eq!(
        set.0.get(&EntityKey::new(EntityKind::Api, "orders")),
        Some(&updated)
    );
    assert_eq!(set.0.len(), 1);
}

async fn stale_expected_revision_is_a_conflict_and_writes_nothing(store: Store) {
    let plan = Plan {
        changes: vec![change(
            ChangeOp::Create,
            EntityKind::Policy,
            "p",
            Some(json!({})),
        )],
    };
    store.commit(&plan, &Actor::local("t"), None).await.unwrap();
    let other = Plan {
        changes: vec![change(
            ChangeOp::Create,
            EntityKind::Policy,
            "q",
            Some(json!({})),
        )],
    };
    match store.commit(&other, &Actor::local("t"), Some(0)).await {
        Err(StoreError::Conflict {
            expected: 0,
            actual: 1,
        }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    let (rev, set) = store.load().await.unwrap();
    assert_eq!(rev, 1);
    assert_eq!(set.0.len(), 1);
    assert_eq!(store.changes(0, 100).await.unwrap().len(), 1);
}

async fn empty_plan_writes_nothing(store: Store) {
    assert_eq!(
        store
            .commit(&Plan::default(), &Actor::local("t"), Some(0))
            .await
            .unwrap(),
        0
    );
    assert!(matches!(
        store
            .commit(&Plan::default(), &Actor::local("t"), Some(5))
            .await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(store.changes(0, 10).await.unwrap().is_empty());
}

async fn concurrent_commits_get_distinct_revisions(store: Store) {
    let store = std::sync::Arc::new(store);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let plan = Plan {
                changes: vec![change(
                    ChangeOp::Create,
                    EntityKind::Upstream,
                    &format!("u{i}"),
                    Some(json!({"i": i})),
                )],
            };
            store.commit(&plan, &Actor::local("t"), None).await.unwrap()
        }));
    }
    let mut revs = Vec::new();
    for t in tasks {
        revs.push(t.await.unwrap());
    }
    revs.sort();
    assert_eq!(revs, (1..=8).collect::<Vec<_>>());
    let (rev, set) = store.load().await.unwrap();
    assert_eq!((rev, set.0.len()), (8, 8));
}

async fn tokens_are_kept_hashed_and_revocable(store: Store) {
    let t = TokenRecord {
        id: "abc".into(),
        name: "ci".into(),
        secret_hash: "deadbeef".into(),
        role: "owner".into(),
        created_at: tollgate_store::now_rfc3339(),
        expires_at: None,
        revoked_at: None,
        scopes: Some(vec!["config".into(), "audit".into()]),
        team: Some("payments".into()),
    };
    store
        .put_token(&t, &Actor::local("bootstrap"))
        .await
        .unwrap();
    assert_eq!(store.token("abc").await.unwrap().as_ref(), Some(&t));
    assert_eq!(store.tokens().await.unwrap().len(), 1);
    assert!(store.revoke_token("abc", &Actor::local("t")).await.unwrap());
    assert!(!store.revoke_token("abc", &Actor::local("t")).await.unwrap());
    assert!(
        store
            .token("abc")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert!(store.token("nope").await.unwrap().is_none());
    // Token writes are changes too: they bump the revision and are logged.
    assert_eq!(store.revision().await.unwrap(), 2);
}

#[tokio::test]
async fn reopening_a_sqlite_file_keeps_data_and_runs_migrations_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.db");
    let store = Store::open_sqlite(&path).await.unwrap();
    let plan = Plan {
        changes: vec![change(
            ChangeOp::Create,
            EntityKind::Api,
            "a",
            Some(json!({"name": "a"})),
        )],
    };
    store.commit(&plan, &Actor::local("t"), None).await.unwrap();
    drop(store);
    let store = Store::open_sqlite(&path).await.unwrap();
    let (rev, set) = store.load().await.unwrap();
    assert_eq!(rev, 1);
    assert_eq!(set.0.len(), 1);
    assert_ne!(set, EntitySet::default());
}
