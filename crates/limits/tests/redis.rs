//! Cluster limits against the real Redis on this machine (`TOLLGATE_TEST_REDIS`, default
//! `redis://127.0.0.1:6379`). Skipped with a note when Redis is absent, except under
//! `CI=true`, where Redis is required.

use std::sync::Arc;
use std::time::Duration;

use tollgate_limits::{Limiter, Path, Rate, RedisLimits, Scope, Spec, Verdict};

fn redis_url() -> String {
    std::env::var("TOLLGATE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A connection for the test, or `None` (skip) when Redis is absent outside CI.
async fn redis(node: &str) -> Option<Arc<RedisLimits>> {
    let r = RedisLimits::new(&redis_url(), node, Duration::from_millis(500)).unwrap();
    match r.announce().await {
        Ok(_) => Some(r),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("Redis is required in CI ({}): {e}", redis_url())
        }
        Err(e) => {
            eprintln!("skipping: Redis at {} is not reachable: {e}", redis_url());
            None
        }
    }
}

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("test-{name}-{nanos}-{}", std::process::id())
}

fn spec(id: &str, limit: u64, window: Duration, burst: u64, scope: Scope) -> Spec {
    Spec {
        id: id.to_string(),
        rate: Rate::new(limit, window, burst),
        scope,
        queue: None,
    }
}

fn allowed(v: &Verdict) -> bool {
    matches!(v, Verdict::Allowed(_))
}

#[tokio::test]
async fn cluster_scope_is_exact_across_nodes() {
    let (Some(a), Some(b)) = (redis("a").await, redis("b").await) else {
        return;
    };
    let id = unique("exact");
    let s = spec(&id, 10, Duration::from_secs(60), 10, Scope::Cluster);
    let (la, lb) = (Limiter::new(s.clone()), Limiter::new(s));
    let mut accepted = 0;
    for i in 0..30 {
        let (v, path) = if i % 2 == 0 {
            la.check("app:x", Some(&a)).await
        } else {
            lb.check("app:x", Some(&b)).await
        };
        assert_eq!(path, Path::Redis);
        accepted += usize::from(allowed(&v));
    }
    assert_eq!(accepted, 10, "one budget for both nodes");
    // Another key has its own budget.
    assert!(allowed(&la.check("app:y", Some(&a)).await.0));
}

#[tokio::test]
async fn retry_after_and_remaining_come_from_the_server() {
    let Some(r) = redis("n").await else { return };
    let id = unique("report");
    let l = Limiter::new(spec(&id, 2, Duration::from_secs(10), 2, Scope::Cluster));
    match l.check("k", Some(&r)).await.0 {
        Verdict::Allowed(rep) => {
            assert_eq!(rep.remaining, 1);
            assert!(rep.reset <= Duration::from_secs(5) && rep.reset > Duration::from_secs(4));
        }
        other => panic!("{other:?}"),
    }
    assert!(allowed(&l.check("k", Some(&r)).await.0));
    match l.check("k", Some(&r)).await.0 {
        Verdict::Limited(_, retry) => {
            assert!(
                retry <= Duration::from_secs(5) && retry > Duration::from_millis(4900),
                "{retry:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn queued_requests_get_slots_from_redis_at_the_limit_pace() {
    let Some(r) = redis("q").await else { return };
    let id = unique("queue");
    let mut s = spec(&id, 10, Duration::from_secs(1), 1, Scope::Cluster);
    s.queue = Some((Duration::from_secs(2), 100));
    let l = Limiter::new(s);
    assert!(allowed(&l.check("k", Some(&r)).await.0));
    let mut waits = Vec::new();
    for _ in 0..5 {
        match l.check("k", Some(&r)).await.0 {
            Verdict::Wait(d, _slot) => waits.push(d),
            other => panic!("{other:?}"),
        }
    }
    // Slots 100 ms apart (less the few ms the calls themselves took).
    for (i, w) in waits.iter().enumerate() {
        let want = Duration::from_millis(100 * (i as u64 + 1));
        assert!(
            *w <= want && *w + Duration::from_millis(50) >= want,
            "{i}: {w:?}"
        );
    }
}

#[tokio::test]
async fn leases_serve_locally_and_never_exceed_the_budget() {
    let (Some(a), Some(b)) = (redis("la").await, redis("lb").await) else {
        return;
    };
    let id = unique("lease");
    let scope = Scope::ClusterLease {
        size: 5,
        ttl: Duration::from_secs(10),
    };
    let s = spec(&id, 20, Duration::from_secs(60), 20, scope);
    let (la, lb) = (Limiter::new(s.clone()), Limiter::new(s));
    let mut accepted = 0;
    let mut round_trips = 0;
    for i in 0..60 {
        let (v, path) = if i % 2 == 0 {
            la.check("k", Some(&a)).await
        } else {
            lb.check("k", Some(&b)).await
        };
        round_trips += usize::from(path == Path::Redis);
        accepted += usize::from(allowed(&v));
    }
    // The leases are taken from the same budget; with a long ttl nothing is given up early.
    assert_eq!(accepted, 20);
    assert!(round_trips < 60, "leased requests need no round trip");
    assert!(round_trips <= 4 + 40, "{round_trips}");
}

#[tokio::test]
async fn unreachable_redis_falls_back_to_the_node_share() {
    // A port nothing listens on.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let r = RedisLimits::new(
        &format!("redis://{addr}"),
        "lonely",
        Duration::from_millis(100),
    )
    .unwrap();
    let l = Limiter::new(spec(
        "fallback",
        4,
        Duration::from_secs(60),
        4,
        Scope::Cluster,
    ));
    let mut accepted = 0;
    for _ in 0..10 {
        let (v, path) = l.check("k", Some(&r)).await;
        assert_eq!(path, Path::Fallback);
        accepted += usize::from(allowed(&v));
    }
    // One node known: the whole limit, locally.
    assert_eq!(accepted, 4);
    assert!(!r.healthy());
}

#[tokio::test]
async fn a_killed_connection_falls_back_then_recovers() {
    // Its own database number tells this test's connection apart from the others'.
    let url = format!("{}/9", redis_url().trim_end_matches('/'));
    let Some(_) = redis("probe").await else {
        return;
    };
    let r = RedisLimits::new(&url, "killed", Duration::from_millis(500)).unwrap();
    let id = unique("kill");
    let l = Limiter::new(spec(
        &id,
        1_000_000,
        Duration::from_secs(1),
        1_000_000,
        Scope::Cluster,
    ));
    assert_eq!(l.check("k", Some(&r)).await.1, Path::Redis);
    // Kill the node's connection from outside, as an operator or a failover would.
    let client = redis::Client::open(redis_url()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut admin)
        .await
        .unwrap();
    let ids: Vec<String> = list
        .lines()
        .filter(|l| l.split(' ').any(|f| f == "db=9"))
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .map(str::to_string)
        .collect();
    assert!(!ids.is_empty(), "the node's connection is listed: {list}");
    for id in ids {
        let _: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(&id)
            .query_async(&mut admin)
            .await
            .unwrap();
    }
    let mut paths = Vec::new();
    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        let (v, path) = l.check("k", Some(&r)).await;
        assert!(
            allowed(&v),
            "a Redis failure never refuses a request under the limit"
        );
        paths.push(path);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(paths.contains(&Path::Fallback), "the kill was noticed");
    assert_eq!(
        paths.last(),
        Some(&Path::Redis),
        "and Redis is used again: {paths:?}"
    );
}

#[tokio::test]
async fn a_spent_lease_budget_is_remembered_and_bursts_take_one_lease() {
    let Some(r) = redis("spent").await else {
        return;
    };
    let id = unique("spent");
    let scope = Scope::ClusterLease {
        size: 2,
        ttl: Duration::from_secs(10),
    };
    let l = Limiter::new(spec(&id, 2, Duration::from_secs(60), 2, scope));
    assert_eq!(l.check("k", Some(&r)).await.1, Path::Redis);
    assert_eq!(l.check("k", Some(&r)).await.1, Path::Lease);
    let (v, path) = l.check("k", Some(&r)).await;
    assert!(matches!(v, Verdict::Limited(..)) && path == Path::Redis);
    // Refused again without a round trip until the next request fits.
    let (v, path) = l.check("k", Some(&r)).await;
    assert!(matches!(v, Verdict::Limited(..)) && path == Path::Lease);

    // A burst on a fresh key: one request fetches the lease, the others ask for one each.
    let id = unique("burst");
    let scope = Scope::ClusterLease {
        size: 5,
        ttl: Duration::from_secs(10),
    };
    let l = Limiter::new(spec(&id, 100, Duration::from_secs(60), 100, scope));
    let results = futures_util::future::join_all((0..10).map(|_| l.check("k", Some(&r)))).await;
    assert!(results.iter().all(|(v, _)| allowed(v)));
    // Redis granted 5 + 9 at most; never ten leases of five.
    match l.check("k", Some(&r)).await.0 {
        Verdict::Allowed(rep) => assert!(rep.remaining >= 100 - 5 - 9 - 1, "{rep:?}"),
        other => panic!("{other:?}"),
    }
}

/// The documented bound of `cluster_lease`: over a run of `T` under overload, accepted is at
/// most `burst + rate × (T + lease_ttl)` (a leased request may be served up to `lease_ttl`
/// after Redis counted it) and at least `burst + rate × T − nodes × lease_size` minus what
/// the nodes had no chance to ask for in time.
#[tokio::test]
async fn lease_overshoot_stays_within_the_documented_bound() {
    let (Some(a), Some(b)) = (redis("oa").await, redis("ob").await) else {
        return;
    };
    let id = unique("bound");
    let ttl = Duration::from_millis(100);
    let scope = Scope::ClusterLease { size: 10, ttl };
    let s = spec(&id, 200, Duration::from_secs(1), 200, scope);
    let (la, lb) = (Arc::new(Limiter::new(s.clone())), Arc::new(Limiter::new(s)));
    let run = Duration::from_millis(1500);
    let started = tokio::time::Instant::now();
    // Two callers per node, each asking in a tight loop: far more than the limit.
    let mut tasks = Vec::new();
    for (l, r) in [(&la, &a), (&la, &a), (&lb, &b), (&lb, &b)] {
        let (l, r) = (l.clone(), r.clone());
        tasks.push(tokio::spawn(async move {
            let mut ok = 0u64;
            while started.elapsed() < run {
                if allowed(&l.check("k", Some(&r)).await.0) {
                    ok += 1;
                }
                tokio::task::yield_now().await;
            }
            ok
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        accepted += t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ideal = 200.0 + 200.0 * elapsed;
    let upper = ideal + 200.0 * ttl.as_secs_f64();
    let lower = ideal - 2.0 * 10.0 - 200.0 * 0.05;
    let accepted = accepted as f64;
    assert!(
        accepted <= upper,
        "accepted {accepted} > bound {upper:.0} (ideal {ideal:.0})"
    );
    assert!(
        accepted >= lower,
        "accepted {accepted} < {lower:.0} (ideal {ideal:.0})"
    );
}
