//! What the limit phase costs a request on the local path: `cargo bench -p
//! tollgate-gateway --bench limit_check`.
//!
//! First prints latency percentiles of single checks (each timed on its own, so p99 and
//! p99.9 are real tail figures, not means), then runs criterion for the means. The route
//! has what a typical API carries: a per-second and a per-minute limit by app, and a
//! monthly quota.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use criterion::Criterion;
use http::HeaderMap;
use tollgate_gateway::auth::Identity;
use tollgate_gateway::limit::{LimitsShared, RouteLimits, Used, admit};
use tollgate_model::policy::{Quota, RateLimit};

fn route(shared: &LimitsShared, quota: bool) -> RouteLimits {
    let limits: Vec<RateLimit> = vec![
        yaml_serde::from_str("{ limit: 1000000000, window: 1s, by: ip }").unwrap(),
        yaml_serde::from_str("{ limit: 1000000000, window: 1m, by: ip }").unwrap(),
    ];
    let quotas: Vec<Quota> = if quota {
        vec![yaml_serde::from_str("{ limit: 1000000000000, period: month, by: ip }").unwrap()]
    } else {
        Vec::new()
    };
    RouteLimits::compile(
        "bench",
        ("api:bench", "api:bench"),
        &limits.iter().collect::<Vec<_>>(),
        &quotas.iter().collect::<Vec<_>>(),
        shared,
        &mut Used::default(),
    )
    .unwrap()
}

fn ip(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
}

fn percentiles(
    rt: &tokio::runtime::Runtime,
    name: &str,
    limits: &RouteLimits,
    shared: &LimitsShared,
    keys: u32,
) {
    let identity = Identity::default();
    let headers = HeaderMap::new();
    const N: usize = 1_000_000;
    let mut samples = Vec::with_capacity(N);
    rt.block_on(async {
        for i in 0..N {
            let addr = ip(i as u32 % keys);
            let t = Instant::now();
            let r = admit(limits, shared, &identity, addr, &headers).await;
            samples.push(t.elapsed());
            black_box(r.is_ok());
        }
    });
    samples.sort();
    let at = |q: f64| samples[((N as f64 * q) as usize).min(N - 1)];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{name:<44} p50 {:>6.2} µs   p99 {:>6.2} µs   p99.9 {:>6.2} µs   max {:>8.1} µs",
        us(at(0.50)),
        us(at(0.99)),
        us(at(0.999)),
        us(samples[N - 1])
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("limit phase, local path, {} checks each:", 1_000_000);
    for (name, quota, keys) in [
        ("2 rate limits, 1 caller", false, 1),
        ("2 rate limits, 100k callers", false, 100_000),
        ("2 rate limits + monthly quota, 1 caller", true, 1),
        ("2 rate limits + monthly quota, 100k callers", true, 100_000),
    ] {
        let shared = LimitsShared::default();
        let limits = route(&shared, quota);
        percentiles(&rt, name, &limits, &shared, keys);
    }

    let mut c = Criterion::default().configure_from_args();
    let identity = Identity::default();
    let headers = HeaderMap::new();
    let shared = LimitsShared::default();
    let limits = route(&shared, true);
    let mut i = 0u32;
    c.bench_function("admit: 2 rate limits + quota, 100k callers", |b| {
        b.iter(|| {
            i = (i + 1) % 100_000;
            rt.block_on(admit(&limits, &shared, &identity, ip(i), &headers))
                .is_ok()
        })
    });
    c.final_summary();
}
