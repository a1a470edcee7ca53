//! Cluster-wide limits through real nodes sharing the real Redis on this machine
//! (`TOLLGATE_TEST_REDIS`, default `redis://127.0.0.1:6379`; required when `CI=true`).

mod common;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tokio::net::{TcpListener, TcpStream};

fn redis_addr() -> String {
    let url =
        std::env::var("TOLLGATE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    url.trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_string()
}

async fn redis_or_skip() -> Option<String> {
    match TcpStream::connect(redis_addr()).await {
        Ok(_) => Some(redis_addr()),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("Redis is required in CI ({}): {e}", redis_addr())
        }
        Err(e) => {
            eprintln!("skipping: Redis at {} is not reachable: {e}", redis_addr());
            None
        }
    }
}

/// An API name no earlier run used, so Redis keys start empty.
fn fresh_api() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("c{nanos}")
}

fn cluster_config(m: &MockUpstream, api_name: &str, limit: &str) -> String {
    format!(
        "format_version: 1\nupstreams:\n{}apis:\n  - name: {api_name}\n    policies: [{{ rate_limit: {limit} }}]\n    versions:\n      - version: v1\n        upstream: svc\n        routes:\n          - {{ path: / }}\n",
        upstream("svc", &[m.url()], "")
    )
}

#[tokio::test]
async fn two_nodes_share_one_budget() {
    let Some(redis) = redis_or_skip().await else {
        return;
    };
    let m = MockUpstream::start("svc").await;
    let yaml = cluster_config(
        &m,
        &fresh_api(),
        "{ limit: 10, window: 1m, by: api, scope: cluster }",
    );
    let url = format!("redis://{redis}");
    let a = start_with(
        NodeOptions::new()
            .config(yaml.clone())
            .arg("--redis")
            .arg(&url),
    )
    .await;
    let b = start_with(NodeOptions::new().config(yaml).arg("--redis").arg(&url)).await;
    let client = Client::new();
    let mut ok = 0;
    let mut limited = 0;
    for i in 0..30 {
        let node = if i % 2 == 0 { &a } else { &b };
        match client.get(&node.proxy_url("/x")).await.unwrap().status {
            200 => ok += 1,
            429 => limited += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(
        (ok, limited),
        (10, 20),
        "exactly the limit across both nodes"
    );
}

/// A TCP relay to Redis that can be cut (every connection closed, new ones refused) and
/// restored, to take Redis away from a node mid-traffic.
struct Relay {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Relay {
    async fn start(target: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (c, list) = (cut.clone(), conns.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if c.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut out) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                list.lock().unwrap().push(task.abort_handle());
            }
        });
        Relay { addr, cut, conns }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn losing_redis_mid_traffic_never_fails_a_request() {
    let Some(redis) = redis_or_skip().await else {
        return;
    };
    let relay = Relay::start(redis).await;
    let m = MockUpstream::start("svc").await;
    let yaml = cluster_config(
        &m,
        &fresh_api(),
        "{ limit: 100000, window: 1m, by: ip, scope: cluster }",
    );
    let node = start_with(
        NodeOptions::new()
            .config(yaml)
            .arg("--redis")
            .arg(format!("redis://{}", relay.addr)),
    )
    .await;
    let client = Client::new();
    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    let started = tokio::time::Instant::now();
    let mut phase = 0;
    while started.elapsed() < Duration::from_secs(5) {
        let t = started.elapsed();
        if phase == 0 && t >= Duration::from_secs(1) {
            relay.cut();
            phase = 1;
        } else if phase == 1 && t >= Duration::from_secs(3) {
            relay.restore();
            phase = 2;
        }
        let r = client.get(&node.proxy_url("/x")).await.unwrap();
        *statuses.entry(r.status).or_default() += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        statuses.keys().copied().collect::<Vec<_>>(),
        vec![200],
        "{statuses:?}"
    );
    let text = Client::new()
        .get(&node.admin_url("/metrics"))
        .await
        .unwrap()
        .text();
    assert!(
        metric(&text, "tollgate_limit_fallback_total") > 0.0,
        "{text}"
    );
    assert!(metric(&text, "tollgate_limit_redis_errors_total") > 0.0);
    assert_eq!(
        metric(&text, "tollgate_limit_redis_up"),
        1.0,
        "Redis is back"
    );
    assert!(
        node.logs().contains("Redis unreachable"),
        "the outage is logged"
    );
}
