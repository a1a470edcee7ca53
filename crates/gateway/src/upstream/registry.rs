//! Compiled upstream pools and the registry that keeps their long-lived parts (target
//! health, connection pools) across snapshots.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tollgate_model::{HashOn, Upstream, UpstreamProtocol};

use super::{Balancer, TargetState};
use crate::body::ProxyBody;

pub type HttpClient = Client<HttpsConnector<HttpConnector>, ProxyBody>;

/// One upstream as the request path uses it.
pub struct UpstreamPool {
    pub name: Arc<str>,
    pub targets: Vec<Arc<TargetState>>,
    pub balancer: Balancer,
    pub hash_on: Option<HashOn>,
    pub retries: u32,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub protocol: UpstreamProtocol,
    /// Which pooled client serves this upstream (see [`UpstreamPool::client`]).
    client_key: ClientKey,
    /// TLS for `https://` targets.
    tls: Arc<rustls::ClientConfig>,
    /// Name checked in the targets' certificates instead of their host.
    server_name: Option<String>,
    /// Failures in a row that eject a target (passive health), if configured.
    pub passive_threshold: Option<u32>,
    /// When a passively ejected target is retried (only without active probes).
    pub cooldown: Option<Duration>,
}

impl std::fmt::Debug for UpstreamPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamPool")
            .field("name", &self.name)
            .field("targets", &self.targets)
            .finish()
    }
}

/// State that outlives a snapshot: target health and pooled connections.
#[derive(Default)]
pub struct Registry {
    targets: Mutex<HashMap<(String, String), Arc<TargetState>>>,
    /// Opens sealed client keys of upstream TLS settings.
    pub(crate) secrets: Option<tollgate_secrets::Secrets>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Registry")
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Registry {
    pub fn new(secrets: Option<tollgate_secrets::Secrets>) -> Registry {
        Registry {
            targets: Mutex::default(),
            secrets,
        }
    }

    /// Builds the pool for one configured upstream, reusing known targets' state.
    pub fn pool(&self, up: &Upstream) -> Result<Arc<UpstreamPool>, String> {
        let mut targets = Vec::with_capacity(up.targets.len());
        for t in &up.targets {
            let url = t.url.trim_end_matches('/').to_string();
            let authority = url
                .strip_prefix("http://")
                .or_else(|| url.strip_prefix("https://"))
                .and_then(|a| a.parse().ok())
                .ok_or_else(|| {
                    format!(
                        "upstream {}: target `{}` is not http(s)://host:port",
                        up.name, t.url
                    )
                })?;
            let state = lock(&self.targets)
                .entry((up.name.clone(), url.clone()))
                .or_insert_with(|| Arc::new(TargetState::new(&up.name, &url, authority)))
                .clone();
            targets.push(state);
        }
        let active = up.health.active.is_some();
        let tls = crate::tls::upstream_config(&up.tls, self.secrets.as_ref())
            .map_err(|e| format!("upstream {}: {e}", up.name))?;
        let tls_id = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            serde_json::to_string(&up.tls)
                .unwrap_or_default()
                .hash(&mut h);
            h.finish()
        };
        Ok(Arc::new(UpstreamPool {
            name: Arc::from(up.name.as_str()),
            balancer: Balancer::new(up.balance, up.targets.iter().map(|t| t.weight).collect()),
            targets,
            hash_on: up.hash_on.clone(),
            retries: up.retries,
            read_timeout: up.timeouts.read.as_std(),
            write_timeout: up.timeouts.write.as_std(),
            protocol: up.protocol,
            client_key: (up.timeouts.connect.as_std(), up.protocol, tls_id),
            tls,
            server_name: up.tls.server_name.clone(),
            passive_threshold: up.health.passive.as_ref().map(|p| p.unhealthy),
            cooldown: match (&up.health.passive, active) {
                (Some(p), false) => Some(p.cooldown.as_std()),
                _ => None,
            },
        }))
    }

    /// Forgets targets that are no longer configured.
    pub fn retain(&self, live: &HashSet<(String, String)>) {
        lock(&self.targets).retain(|k, _| live.contains(k));
    }
}

/// Connect timeout, protocol and TLS settings: what distinguishes one client from another.
type ClientKey = (Duration, UpstreamProtocol, u64);

thread_local! {
    /// Each proxy worker thread keeps its own clients, so a pooled upstream connection is
    /// driven by the same thread (and runtime) as the requests that use it.
    static CLIENTS: std::cell::RefCell<HashMap<ClientKey, HttpClient>> = std::cell::RefCell::new(HashMap::new());
}

impl UpstreamPool {
    /// This thread's client for the upstream, with its own connection pool.
    pub fn client(&self) -> HttpClient {
        CLIENTS.with(|clients| {
            clients
                .borrow_mut()
                .entry(self.client_key)
                .or_insert_with(|| {
                    build_client(self.client_key, &self.tls, self.server_name.clone())
                })
                .clone()
        })
    }
}

fn build_client(
    (connect_timeout, protocol, _): ClientKey,
    tls: &rustls::ClientConfig,
    server_name: Option<String>,
) -> HttpClient {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));
    http.enforce_http(false);
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls.clone())
        .https_or_http();
    let name = server_name.and_then(|n| rustls::pki_types::ServerName::try_from(n).ok());
    let builder = match name {
        Some(name) => {
            builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
        }
        None => builder,
    };
    let connector = builder.enable_http1().wrap_connector(http);
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(1024)
        // The proxy sets Host from the target, made once per target.
        .set_host(false);
    if protocol == UpstreamProtocol::H2c {
        builder.http2_only(true);
    }
    builder.build(connector)
}
