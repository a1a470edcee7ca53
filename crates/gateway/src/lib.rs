//! The gateway (data plane): listeners, the request phases, upstream pools and the
//! snapshot holder.
//!
//! The control plane hands the gateway a validated [`tollgate_model::Document`] through
//! [`Gateway::install`]; the gateway compiles it into a [`Snapshot`] and swaps it in
//! atomically. Requests load the current snapshot once and never see half a change, and
//! never touch the store.

pub mod accesslog;
pub mod aggregate;
pub mod auth;
pub mod body;
pub mod breaker;
pub mod cache;
pub mod entitle;
pub mod error;
pub mod fetch;
pub mod forward;
pub mod guard;
pub mod lifecycle;
pub mod limit;
pub mod listener;
pub mod metering;
pub mod metrics;
pub mod otel;
pub mod proxy;
pub mod snapshot;
pub mod tls;
pub mod transform;
pub mod upstream;
pub mod validate;

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use tollgate_model::Document;

pub use error::ProxyError;
pub use listener::{ListenerSettings, serve, serve_tls};
pub use snapshot::{CompileError, Defaults, Snapshot};

use crate::metrics::RouteMetrics;
use crate::upstream::{HealthChecks, Registry};

/// The running gateway: the current snapshot and what outlives snapshots.
pub struct Gateway {
    current: ArcSwap<Snapshot>,
    registry: Registry,
    health: HealthChecks,
    defaults: Defaults,
    /// Handles for requests that match no route.
    unmatched: RouteMetrics,
    /// Answers kept by `cache` policies; outlives snapshots.
    pub cache: cache::ResponseCache,
    /// Fetched key sets and cached verifications; outlive snapshots.
    pub auth: auth::AuthShared,
    /// Rate-limit, quota, breaker and upstream-limit state; outlives snapshots.
    pub limits: limit::LimitsShared,
    /// Per-subscription usage counts for billing.
    pub meter: Arc<metering::Meter>,
    /// The analytics event pipeline.
    pub insight: Arc<tollgate_insight::Pipeline>,
    /// The access log writer (off until started).
    pub access_log: Arc<tollgate_insight::accesslog::AccessLog>,
    /// Client addresses and apps a detector blocked, until when (Unix seconds).
    pub blocks: arc_swap::ArcSwap<Blocks>,
    /// OpenTelemetry span export (off until started).
    pub tracer: otel::Tracer,
    /// Certificates the TLS listener serves, swapped on install.
    pub tls: Arc<tls::TlsState>,
    /// One TLS server configuration for every worker, so sessions resume on any of them.
    tls_config: std::sync::OnceLock<Arc<rustls::ServerConfig>>,
    /// The TLS listener's port, for redirects from plain HTTP (0: none).
    pub https_port: std::sync::atomic::AtomicU16,
    /// Serialises installs so an older revision never replaces a newer one.
    install_lock: std::sync::Mutex<()>,
}

/// What detectors blocked: client addresses and apps, each until a Unix second.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Blocks {
    pub addresses: std::collections::HashMap<std::net::IpAddr, i64>,
    pub apps: std::collections::HashMap<String, i64>,
}

impl Blocks {
    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty() && self.apps.is_empty()
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Gateway {
    /// Replaces the blocks (the store's active ones, all nodes).
    pub fn set_blocks(&self, blocks: Blocks) {
        if **self.blocks.load() != blocks {
            self.blocks.store(Arc::new(blocks));
        }
    }

    /// Adds one block at once (this node), before the next sync from the store.
    pub fn add_block(&self, address: Option<std::net::IpAddr>, app: Option<&str>, until: i64) {
        let mut b = (**self.blocks.load()).clone();
        if let Some(ip) = address {
            b.addresses.insert(ip, until);
        }
        if let Some(a) = app {
            b.apps.insert(a.to_string(), until);
        }
        self.blocks.store(Arc::new(b));
    }

    /// Until when `address` is blocked, if it is now.
    pub(crate) fn blocked_address(&self, address: std::net::IpAddr) -> Option<i64> {
        let b = self.blocks.load();
        if b.addresses.is_empty() {
            return None;
        }
        b.addresses
            .get(&address)
            .copied()
            .filter(|u| *u > unix_now())
    }

    /// Until when `app` is blocked, if it is now.
    pub(crate) fn blocked_app(&self, app: &str) -> Option<i64> {
        let b = self.blocks.load();
        if b.apps.is_empty() {
            return None;
        }
        b.apps.get(app).copied().filter(|u| *u > unix_now())
    }
}

/// The detectors' rules from the configuration.
fn detector_rules(
    d: &tollgate_model::document::DetectorSettings,
) -> tollgate_insight::detect::Rules {
    let rule = |r: &tollgate_model::document::DetectorRule| {
        r.enabled.then(|| tollgate_insight::detect::Rule {
            threshold: r.threshold,
            window: r.window.as_std().as_secs().max(1),
            block: r.block.as_std().as_secs(),
        })
    };
    tollgate_insight::detect::Rules {
        auth_failures: rule(&d.auth_failures),
        enumeration: rule(&d.enumeration),
        key_sharing: rule(&d.key_sharing),
        spikes: d
            .spikes
            .enabled
            .then_some(tollgate_insight::spikes::SpikeRule {
                sigmas: d.spikes.sigmas,
                factor: d.spikes.factor,
                warmup: d.spikes.warmup,
                min_requests: d.spikes.min_requests,
            }),
    }
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("revision", &self.revision())
            .finish()
    }
}

impl Gateway {
    pub fn new(defaults: Defaults) -> Arc<Gateway> {
        Arc::new(Gateway {
            current: ArcSwap::from_pointee(Snapshot::empty()),
            registry: Registry::new(defaults.secrets.clone()),
            health: HealthChecks::default(),
            defaults: defaults.clone(),
            unmatched: RouteMetrics::new("", "", ""),
            cache: cache::ResponseCache::new(defaults.cache_size),
            auth: auth::AuthShared::default(),
            limits: limit::LimitsShared::default(),
            meter: Arc::default(),
            insight: Arc::default(),
            access_log: Arc::default(),
            blocks: arc_swap::ArcSwap::default(),
            tracer: otel::Tracer::default(),
            tls: Arc::default(),
            tls_config: std::sync::OnceLock::new(),
            https_port: std::sync::atomic::AtomicU16::new(0),
            install_lock: std::sync::Mutex::new(()),
        })
    }

    /// The snapshot requests are served from now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    pub fn revision(&self) -> i64 {
        self.current.load().revision
    }

    /// The TLS listener's server configuration (certificates by SNI from the current
    /// snapshot), shared by every worker.
    pub fn tls_server_config(&self) -> Arc<rustls::ServerConfig> {
        self.tls_config
            .get_or_init(|| tls::server_config(self.tls.clone()))
            .clone()
    }

    fn context(&self) -> snapshot::Context<'_> {
        snapshot::Context {
            registry: &self.registry,
            defaults: &self.defaults,
            auth: &self.auth,
            limits: &self.limits,
        }
    }

    /// The node secret, when configured.
    pub fn secrets(&self) -> Option<&tollgate_secrets::Secrets> {
        self.defaults.secrets.as_ref()
    }

    /// Compiles `doc` without installing it: what `install` would refuse, refused here
    /// before a change is committed.
    pub fn check(&self, doc: &Document) -> Result<(), CompileError> {
        Snapshot::compile_trial(doc, &self.context()).map(|_| ())
    }

    /// Compiles `doc` at `revision` and swaps it in. A revision at or below the current one
    /// is ignored (returns false). On error the running snapshot stays as it was.
    pub fn install(&self, doc: &Document, revision: i64) -> Result<bool, CompileError> {
        let _guard = self.install_lock.lock().unwrap_or_else(|p| p.into_inner());
        if revision <= self.revision() && revision != 0 {
            return Ok(false);
        }
        let started = Instant::now();
        let mut snapshot = Snapshot::compile(doc, revision, &self.context())?;
        self.insight
            .set_rules(detector_rules(&doc.settings.detectors));
        self.limits.retain(&snapshot.used);
        if let Some(table) = snapshot.certificates.take() {
            self.tls.install(table);
        }
        self.health.sync(snapshot.probes.clone());
        self.current.store(Arc::new(snapshot));
        ::metrics::gauge!("tollgate_config_revision").set(revision as f64);
        ::metrics::histogram!("tollgate_config_apply_seconds")
            .record(started.elapsed().as_secs_f64());
        tracing::info!(
            revision,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "configuration installed"
        );
        Ok(true)
    }
}
