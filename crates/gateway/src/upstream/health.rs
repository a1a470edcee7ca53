//! Active health probes: one task per upstream with `health.active`, restarted only when
//! that upstream's probe settings or targets change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::{Method, Request, Uri};
use tokio::task::JoinHandle;
use tollgate_model::ActiveHealth;

use super::UpstreamPool;
use crate::body::empty;

/// A running probe task with the settings and targets it was started for.
type Probe = (ActiveHealth, Vec<String>, JoinHandle<()>);

#[derive(Default)]
pub struct HealthChecks {
    running: Mutex<HashMap<String, Probe>>,
}

impl std::fmt::Debug for HealthChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HealthChecks")
    }
}

impl Drop for HealthChecks {
    fn drop(&mut self) {
        let running = self.running.get_mut().unwrap_or_else(|p| p.into_inner());
        for (_, (_, _, task)) in running.drain() {
            task.abort();
        }
    }
}

impl HealthChecks {
    /// Makes the running probes match `wanted` (upstream pools with their settings).
    pub fn sync(&self, wanted: Vec<(Arc<UpstreamPool>, ActiveHealth)>) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let names: Vec<String> = wanted.iter().map(|(p, _)| p.name.to_string()).collect();
        running.retain(|name, (_, _, task)| {
            let keep = names.contains(name);
            if !keep {
                task.abort();
            }
            keep
        });
        for (pool, cfg) in wanted {
            let urls: Vec<String> = pool.targets.iter().map(|t| t.url.clone()).collect();
            if let Some((old_cfg, old_urls, _)) = running.get(pool.name.as_ref())
                && *old_cfg == cfg
                && *old_urls == urls
            {
                continue;
            }
            let task = tokio::spawn(probe_loop(pool.clone(), cfg.clone()));
            if let Some((_, _, old)) = running.insert(pool.name.to_string(), (cfg, urls, task)) {
                old.abort();
            }
        }
    }
}

async fn probe_loop(pool: Arc<UpstreamPool>, cfg: ActiveHealth) {
    let mut tick = tokio::time::interval(cfg.interval.as_std());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let probes = pool.targets.iter().map(|t| {
            let pool = pool.clone();
            let cfg = cfg.clone();
            let target = t.clone();
            async move {
                let ok = probe(&pool, &target, &cfg).await;
                target.record_probe(ok, cfg.healthy, cfg.unhealthy);
            }
        });
        futures_util::future::join_all(probes).await;
    }
}

async fn probe(pool: &UpstreamPool, target: &super::TargetState, cfg: &ActiveHealth) -> bool {
    let Ok(uri) = Uri::builder()
        .scheme(target.scheme.clone())
        .authority(target.authority.clone())
        .path_and_query(cfg.path.as_str())
        .build()
    else {
        return false;
    };
    let mut req = Request::new(empty());
    *req.method_mut() = Method::GET;
    *req.uri_mut() = uri;
    req.headers_mut().insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static("tollgate-health"),
    );
    if let Ok(host) = http::HeaderValue::from_str(target.authority.as_str()) {
        req.headers_mut().insert(http::header::HOST, host);
    }
    match tokio::time::timeout(cfg.timeout.as_std(), pool.client().request(req)).await {
        Ok(Ok(resp)) => {
            let ok = resp.status().is_success() || resp.status().is_redirection();
            drop(resp);
            ok
        }
        _ => false,
    }
}
