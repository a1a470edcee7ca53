//! `tollgate serve`: open the store, load the configuration, start the proxy and admin
//! listeners, keep the gateway in step with the store, and drain on shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tollgate_admin::{AdminState, Role, generate_token, hash_token, sync_from_store};
use tollgate_gateway::metering::{UsageRow, UsageStore};
use tollgate_gateway::{Defaults, Gateway, ListenerSettings};
use tollgate_limits::RedisLimits;
use tollgate_limits::quota::{Deltas, QuotaStore};
use tollgate_model::Document;
use tollgate_store::{Store, TokenRecord};

use crate::{Failure, configfile, handover};

#[derive(clap::Args, Clone)]
pub struct ServeArgs {
    /// Declarative configuration applied at start: a complete file; stored entities it
    /// lacks are kept.
    #[arg(long, env = "TOLLGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the embedded database and node files live.
    #[arg(long, env = "TOLLGATE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `postgres://…` for cluster mode; default: SQLite in the data directory.
    #[arg(long, env = "TOLLGATE_DATABASE")]
    pub database: Option<String>,
    /// `redis://…` for cluster-wide limits.
    #[arg(long, env = "TOLLGATE_REDIS")]
    pub redis: Option<String>,
    /// This node's name in logs and node lists (default: the host name).
    #[arg(long, env = "TOLLGATE_NODE_NAME")]
    pub node_name: Option<String>,
    #[arg(long, env = "TOLLGATE_PROXY_LISTEN", default_value = "0.0.0.0:8000")]
    pub proxy_listen: SocketAddr,
    #[arg(long, env = "TOLLGATE_ADMIN_LISTEN", default_value = "127.0.0.1:8001")]
    pub admin_listen: SocketAddr,
    /// The developer portal's listener, or `off`.
    #[arg(long, env = "TOLLGATE_PORTAL_LISTEN", default_value = "0.0.0.0:8002")]
    pub portal_listen: String,
    /// The gateway's address as developers reach it, shown in the portal's API reference
    /// (default: the proxy listener's address).
    #[arg(long, env = "TOLLGATE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// HTTPS listener of the proxy (e.g. 0.0.0.0:8443), serving the configured
    /// certificates by SNI. Off unless set.
    #[arg(long, env = "TOLLGATE_PROXY_TLS_LISTEN")]
    pub proxy_tls_listen: Option<SocketAddr>,
    /// Proxy worker threads, each with its own event loop (default: one per core).
    #[arg(long, env = "TOLLGATE_WORKERS")]
    pub workers: Option<usize>,
    /// How long in-flight requests may take to finish on shutdown.
    #[arg(long, env = "TOLLGATE_DRAIN_TIMEOUT", default_value = "30s")]
    pub drain_timeout: tollgate_model::Duration,
    /// Time a client has to send its request headers.
    #[arg(long, env = "TOLLGATE_HEADER_TIMEOUT", default_value = "10s")]
    pub header_timeout: tollgate_model::Duration,
    /// Largest request head (request line + headers).
    #[arg(long, env = "TOLLGATE_MAX_HEADER_SIZE", default_value = "64KB")]
    pub max_header_size: tollgate_model::ByteSize,
    /// Largest request body when no `request_size` policy applies.
    #[arg(long, env = "TOLLGATE_MAX_BODY_SIZE", default_value = "16MB")]
    pub max_body_size: tollgate_model::ByteSize,
    /// Memory for cached answers (`cache` policies).
    #[arg(long, env = "TOLLGATE_CACHE_SIZE", default_value = "64MB")]
    pub cache_size: tollgate_model::ByteSize,
    /// The node secret (64 hex digits) that peppers API key hashes and seals stored
    /// secrets; every node of a cluster needs the same one. Default: read from (or made
    /// once in) `node.secret` in the data directory.
    #[arg(long, env = "TOLLGATE_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// `text` or `json` log lines.
    #[arg(long, env = "TOLLGATE_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
    /// Where access log lines go (APIs with `access_log`): a file, rotated at 100 MB with
    /// five old files kept, or `-` for standard output. Default: `access.log` in the data
    /// directory.
    #[arg(long, env = "TOLLGATE_ACCESS_LOG")]
    pub access_log: Option<String>,
    /// `off` stops collecting analytics on this node: its requests are then missing from
    /// the analytics queries, and its detectors (which read the same stream) are off too.
    /// Billing and metrics are not affected.
    #[arg(long, env = "TOLLGATE_ANALYTICS", default_value = "on", value_parser = ["on", "off"])]
    pub analytics: String,
    /// Export OpenTelemetry spans (OTLP/HTTP, JSON) to this collector, e.g.
    /// `http://127.0.0.1:4318`: a server span per request and a client span for its
    /// upstream part. Off unless set.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

/// Size at which the access log file is rotated.
const ACCESS_LOG_MAX: u64 = 100 << 20;

/// What `demo` adds to a plain `serve`.
pub struct Extras {
    /// Configuration applied after the store opens.
    pub config: Document,
    /// Called once the node is serving, with the admin token it printed or made.
    pub on_ready: Box<dyn FnOnce(&str) + Send>,
    /// Always make (and hand to `on_ready`) a fresh owner token.
    pub fresh_token: bool,
    /// Started inside the runtime before the configuration is applied.
    pub start: Box<dyn FnOnce() + Send>,
    /// Sign-in accounts made once the configuration is applied.
    pub accounts: Vec<Account>,
}

/// A sign-in account `demo` makes: a dashboard user with a role, or (without one) the
/// portal account of a configured developer.
pub struct Account {
    pub email: String,
    pub password: String,
    pub dashboard_role: Option<&'static str>,
}

pub fn run(args: ServeArgs, extras: Option<Extras>) -> Result<(), Failure> {
    init_logging(&args.log_format)?;
    // Reject a bad configuration file before anything starts.
    let file_config = match &args.config {
        Some(path) => Some(configfile::load(path, None)?),
        None => None,
    };
    // Thread per core: this thread's single-threaded runtime runs the control plane and
    // proxy worker 0; each further worker gets a thread and runtime of its own (see
    // `serve`). A single-threaded scheduler hands a request between the client's and the
    // upstream's connection tasks without cross-thread wake-ups, which measured a third
    // cheaper per request than the multi-threaded scheduler.
    let mut rt = tokio::runtime::Builder::new_current_thread();
    rt.enable_all();
    let rt = rt
        .build()
        .map_err(|e| Failure::Runtime(format!("cannot start the runtime: {e}")))?;
    let result = rt.block_on(serve(args, file_config, extras));
    // Whatever is still running (probes, pooled connections) is not waited for.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    result
}

fn init_logging(format: &str) -> Result<(), Failure> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match format {
        "text" => builder.try_init(),
        "json" => builder.json().try_init(),
        other => {
            return Err(Failure::Invalid(format!(
                "--log-format `{other}`: use text or json"
            )));
        }
    };
    result.map_err(|e| Failure::Runtime(format!("cannot start logging: {e}")))
}

fn install_metrics() -> Result<PrometheusHandle, Failure> {
    let buckets = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
        .map_err(|e| Failure::Runtime(format!("metrics: {e}")))?
        .install_recorder()
        .map_err(|e| Failure::Runtime(format!("metrics: {e}")))?;
    tollgate_gateway::metrics::describe();
    // Present from the start so dashboards and alerts see a zero, not a gap.
    metrics::counter!("tollgate_events_dropped_total").absolute(0);
    metrics::counter!("tollgate_access_log_dropped_total").absolute(0);
    metrics::gauge!("tollgate_store_up").set(1.0);
    Ok(handle)
}

fn data_dir(args: &ServeArgs) -> PathBuf {
    args.data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("./tollgate-data"))
}

/// The node secret: `--secret-key`, or the `node.secret` file of the data directory,
/// created (readable by the owner only) on first start. It is never in the database.
fn node_secret(args: &ServeArgs) -> Result<tollgate_secrets::Secrets, Failure> {
    let bad = |e: tollgate_secrets::SecretError| Failure::Invalid(format!("--secret-key: {e}"));
    if let Some(hex) = &args.secret_key {
        return tollgate_secrets::Secrets::from_hex(hex).map_err(bad);
    }
    let dir = data_dir(args);
    let path = dir.join("node.secret");
    let io = |e: std::io::Error| Failure::Runtime(format!("node secret {}: {e}", path.display()));
    match std::fs::read_to_string(&path) {
        Ok(text) => tollgate_secrets::Secrets::from_hex(&text)
            .map_err(|e| Failure::Runtime(format!("node secret {}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if args.database.is_some() {
                tracing::warn!(
                    path = %path.display(),
                    "no TOLLGATE_SECRET_KEY: made a node secret for this node only; \
                     every node sharing the database needs the same secret"
                );
            }
            std::fs::create_dir_all(&dir).map_err(io)?;
            let hex = tollgate_secrets::generate_node_secret();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&path).map_err(io)?;
            std::io::Write::write_all(&mut file, hex.as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
            tollgate_secrets::Secrets::from_hex(&hex).map_err(bad)
        }
        Err(e) => Err(io(e)),
    }
}

async fn open_store(args: &ServeArgs) -> Result<Store, Failure> {
    let url = match &args.database {
        Some(url) => url.clone(),
        None => {
            let dir = data_dir(args);
            std::fs::create_dir_all(&dir).map_err(|e| {
                Failure::Runtime(format!(
                    "cannot create the data directory {}: {e}",
                    dir.display()
                ))
            })?;
            format!("sqlite:{}", dir.join("tollgate.db").display())
        }
    };
    Store::connect(&url)
        .await
        .map_err(|e| Failure::Runtime(format!("cannot open the store: {e}")))
}

/// The first admin credential (CONTRACT §1): `TOLLGATE_ADMIN_TOKEN` if set, else a random
/// token made on first start and printed once. Returns the token when it was made here.
async fn bootstrap_token(store: &Store, fresh: bool) -> Result<Option<String>, Failure> {
    let fail = |e: tollgate_store::StoreError| Failure::Runtime(format!("admin token: {e}"));
    if let Ok(token) = std::env::var("TOLLGATE_ADMIN_TOKEN")
        && !token.is_empty()
    {
        if token.len() < 16 {
            return Err(Failure::Invalid(
                "TOLLGATE_ADMIN_TOKEN must be at least 16 characters".into(),
            ));
        }
        let hash = hash_token(&token);
        let current = store.token("bootstrap").await.map_err(fail)?;
        if current
            .as_ref()
            .is_none_or(|t| t.secret_hash != hash || t.revoked_at.is_some())
        {
            let record = TokenRecord {
                id: "bootstrap".into(),
                name: "bootstrap (TOLLGATE_ADMIN_TOKEN)".into(),
                secret_hash: hash,
                role: Role::Owner.as_str().into(),
                created_at: tollgate_store::now_rfc3339(),
                expires_at: None,
                revoked_at: None,
                scopes: None,
                team: None,
            };
            store
                .put_token(&record, &tollgate_store::Actor::local("bootstrap"))
                .await
                .map_err(fail)?;
        }
        return Ok(fresh.then_some(token));
    }
    let any_live = store
        .tokens()
        .await
        .map_err(fail)?
        .iter()
        .any(|t| t.revoked_at.is_none());
    if any_live && !fresh {
        return Ok(None);
    }
    let (token, record) = generate_token("first admin token", Role::Owner, None);
    store
        .put_token(&record, &tollgate_store::Actor::local("bootstrap"))
        .await
        .map_err(fail)?;
    Ok(Some(token))
}

/// The portal's address from `--portal-listen`; `off` turns the portal off.
fn portal_address(value: &str) -> Result<Option<SocketAddr>, Failure> {
    if value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    value.parse().map(Some).map_err(|_| {
        Failure::Invalid(format!(
            "--portal-listen `{value}` is not an address such as 0.0.0.0:8002, or off"
        ))
    })
}

/// An address this host can connect to: a wildcard listener is reached on loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        match addr {
            SocketAddr::V4(_) => SocketAddr::from(([127, 0, 0, 1], addr.port())),
            SocketAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port())),
        }
    } else {
        addr
    }
}

/// A listener on `addr`: the socket a previous node handed over for `what`, if any, else
/// a new one. Either way kept for a successor (see `handover`).
async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener, Failure> {
    let listener = match handover::take(what, addr) {
        Some(inherited) => TcpListener::from_std(inherited),
        None => TcpListener::bind(addr).await,
    }
    .map_err(|e| Failure::Runtime(format!("cannot listen on {addr} ({what}): {e}")))?;
    handover::keep(what, &listener);
    Ok(listener)
}

/// A proxy listening socket with `SO_REUSEPORT`: every proxy worker gets one of its own on
/// the same address, and the kernel spreads new connections over them evenly (one shared
/// socket let whichever worker woke first take a burst of connections and keep them).
fn bind_shared_port(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// A proxy listener: like [`bind`], with `SO_REUSEPORT` when it is new.
async fn bind_proxy(addr: SocketAddr, what: &str) -> Result<TcpListener, Failure> {
    let listener = match handover::take(what, addr) {
        Some(inherited) => TcpListener::from_std(inherited),
        None => bind_shared_port(addr),
    }
    .map_err(|e| Failure::Runtime(format!("cannot listen on {addr} ({what}): {e}")))?;
    handover::keep(what, &listener);
    Ok(listener)
}

/// Roles of the proxy listeners, as `bind_proxy` and the workers name them.
const PROXY: &str = "proxy";
const PROXY_TLS: &str = "proxy TLS";

async fn serve(
    args: ServeArgs,
    file_config: Option<Document>,
    mut extras: Option<Extras>,
) -> Result<(), Failure> {
    let prometheus = install_metrics()?;
    if let Some(e) = extras.as_mut() {
        std::mem::replace(&mut e.start, Box::new(|| {}))();
    }
    // The configuration this node last served, kept for a start without the store.
    let snapshot_file = data_dir(&args).join("snapshot.json");
    let (store, degraded) = match (open_store(&args).await, &args.database) {
        (Ok(store), _) => (store, false),
        (Err(Failure::Runtime(e)), Some(url)) if snapshot_file.is_file() => {
            tracing::warn!(error = %e, snapshot = %snapshot_file.display(),
                "the store is unreachable: serving the last configuration this node kept until it answers");
            let store = Store::connect_lazy(url)
                .map_err(|e| Failure::Invalid(format!("--database: {e}")))?;
            (store, true)
        }
        (Err(e), _) => return Err(e),
    };
    let store = Arc::new(store);
    let fresh = extras.as_ref().is_some_and(|e| e.fresh_token);
    // Without the store there is no token to make; the admin API answers once it returns.
    let made_token = if degraded {
        None
    } else {
        bootstrap_token(&store, fresh).await?
    };
    if let (Some(token), false) = (&made_token, fresh) {
        println!("Admin API token (shown once, stored hashed): {token}");
    }

    let gateway = Gateway::new(Defaults {
        max_body: args.max_body_size.0,
        cache_size: args.cache_size.0,
        secrets: Some(node_secret(&args)?),
    });
    let node = args.node_name.clone().unwrap_or_else(host_name);
    if let Some(url) = &args.redis {
        // Unique per process: two nodes on one host must count as two.
        let node_id = format!("{node}-{:08x}", fastrand::u32(..));
        let redis = RedisLimits::new(url, &node_id, Duration::from_millis(100))
            .map_err(Failure::Invalid)?;
        redis.spawn_presence();
        let _ = gateway.limits.redis.set(redis);
        tracing::info!(node = %node_id, "cluster limits in Redis");
    }
    if let Err(e) = gateway
        .limits
        .quotas
        .attach(Arc::new(QuotaCounters(store.clone())))
        .await
    {
        if !degraded {
            return Err(Failure::Runtime(format!("cannot load quota counters: {e}")));
        }
        tracing::warn!(error = %e, "quotas count from zero on this node until the store answers");
    }
    let quota_flusher = gateway.limits.quotas.spawn_flusher(QUOTA_FLUSH);
    // Usage rows are keyed by a process id: a restarted node never overwrites its old rows.
    let meter_node = format!("{node}-{:016x}", fastrand::u64(..));
    gateway
        .meter
        .attach(meter_node.clone(), Arc::new(UsageRows(store.clone())));
    let usage_flusher = gateway.meter.spawn_flusher(USAGE_FLUSH);
    // Analytics rows are keyed by the same process id: restarts never overwrite.
    gateway
        .insight
        .attach(meter_node, Arc::new(Aggregates(store.clone())));
    let insight_folder = (args.analytics == "on").then(|| gateway.insight.start());
    let span_exporter: Option<tokio::task::JoinHandle<()>> = match &args.otlp_endpoint {
        None => None,
        Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
            return Err(Failure::Invalid(format!(
                "--otlp-endpoint `{url}` is not an http:// or https:// URL"
            )));
        }
        #[cfg(feature = "otlp")]
        Some(url) => Some(gateway.tracer.start(url.clone(), node.to_string())),
        #[cfg(not(feature = "otlp"))]
        Some(_) => {
            return Err(Failure::Invalid(
                "--otlp-endpoint: this build has no OTLP export (cargo feature `otlp`)".into(),
            ));
        }
    };
    let access_log_target = match args.access_log.as_deref() {
        Some("-") => tollgate_insight::accesslog::Target::Stdout,
        Some(path) => tollgate_insight::accesslog::Target::File(PathBuf::from(path)),
        None => tollgate_insight::accesslog::Target::File(data_dir(&args).join("access.log")),
    };
    gateway
        .access_log
        .start(access_log_target.clone(), ACCESS_LOG_MAX)
        .map_err(|e| {
            Failure::Runtime(format!(
                "cannot open the access log {access_log_target:?}: {e}"
            ))
        })?;
    let insight_flusher = gateway.insight.spawn_flusher(INSIGHT_FLUSH);
    let state = AdminState::new(
        store.clone(),
        gateway.clone(),
        Some(prometheus.clone()),
        Some(snapshot_file.clone()),
    );
    let quota_notices = gateway
        .limits
        .notices
        .subscribe()
        .map(|rx| tollgate_admin::spawn_quota_notices(state.clone(), rx));
    let webhook_worker = tollgate_admin::spawn_webhook_worker(state.clone());
    let credit_watch = tollgate_admin::spawn_credit_watch(state.clone());
    let analytics_retention = tollgate_admin::spawn_analytics_retention(state.clone());
    let alerts = gateway
        .insight
        .subscribe_alerts()
        .map(|rx| tollgate_admin::spawn_alerts(state.clone(), node.to_string(), rx));
    let block_sync = tollgate_admin::spawn_block_sync(state.clone());
    if degraded {
        let (revision, doc) =
            tollgate_admin::read_snapshot(&snapshot_file).map_err(Failure::Runtime)?;
        gateway.install(&doc, revision).map_err(|e| {
            Failure::Runtime(format!("the configuration snapshot cannot be served: {e}"))
        })?;
        metrics::gauge!("tollgate_store_up").set(0.0);
        tracing::warn!(revision, "serving the configuration snapshot");
    } else {
        std::fs::create_dir_all(data_dir(&args))
            .map_err(|e| Failure::Runtime(format!("cannot create the data directory: {e}")))?;
        sync_from_store(&store, &gateway, Some(&snapshot_file))
            .await
            .map_err(|e| Failure::Runtime(e.to_string()))?;
    }
    if degraded && (file_config.is_some() || extras.is_some()) {
        tracing::warn!(
            "--config is not applied while the store is unreachable; apply it once the store answers"
        );
    }
    let startup_docs = file_config
        .into_iter()
        .map(|d| (d, "config-file"))
        .chain(extras.as_ref().map(|e| (e.config.clone(), "demo")))
        .filter(|_| !degraded);
    for (doc, actor) in startup_docs {
        let outcome =
            tollgate_admin::apply_config(&state, &doc, false, &tollgate_store::Actor::local(actor))
                .await
                .map_err(|e| {
                    let details: Vec<String> = e
                        .errors
                        .iter()
                        .map(|l| format!("  {}: {}", l.path, l.message))
                        .collect();
                    Failure::Invalid(format!(
                        "configuration rejected: {}\n{}",
                        e.detail,
                        details.join("\n")
                    ))
                })?;
        tracing::info!(revision = outcome.revision, summary = %outcome.summary, "startup configuration applied");
    }
    for account in extras
        .iter()
        .flat_map(|e| &e.accounts)
        .filter(|_| !degraded)
    {
        let hash = tollgate_admin::hash_password(&account.password).await;
        let made = match account.dashboard_role {
            Some(role) => store
                .put_user(
                    &tollgate_store::UserRecord {
                        email: account.email.clone(),
                        name: String::new(),
                        password_hash: hash,
                        role: role.to_string(),
                        created_at: tollgate_store::now_rfc3339(),
                        disabled_at: None,
                        team: None,
                    },
                    &tollgate_store::Actor::local("demo"),
                )
                .await
                .map(|_| ()),
            None => store.set_portal_password(&account.email, &hash).await,
        };
        made.map_err(|e| Failure::Runtime(format!("demo account {}: {e}", account.email)))?;
    }
    state
        .loaded
        .store(true, std::sync::atomic::Ordering::Relaxed);

    // A node still serving from this data directory hands its listening sockets over.
    let handover = handover::Start::begin(&data_dir(&args)).await;
    let proxy_listener = bind_proxy(args.proxy_listen, PROXY).await?;
    let tls_listener = match args.proxy_tls_listen {
        Some(addr) => Some(bind_proxy(addr, PROXY_TLS).await?),
        None => None,
    };
    if let Some(l) = &tls_listener {
        let addr = l
            .local_addr()
            .map_err(|e| Failure::Runtime(e.to_string()))?;
        gateway
            .https_port
            .store(addr.port(), std::sync::atomic::Ordering::Relaxed);
        if !gateway.tls.has_certificates() {
            tracing::warn!(%addr, "TLS listener has no certificate yet: handshakes fail until one is configured");
        }
        tracing::info!(%addr, "proxy TLS listener");
    }
    let admin_listener = bind(args.admin_listen, "admin API").await?;
    let proxy_addr = proxy_listener
        .local_addr()
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    tracing::info!(%proxy_addr, %admin_addr, revision = gateway.revision(), %node, "tollgate is serving");

    let portal_listener = match portal_address(&args.portal_listen)? {
        Some(addr) => Some(bind(addr, "developer portal").await?),
        None => None,
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let background = spawn_background(
        store.clone(),
        gateway.clone(),
        prometheus,
        node.to_string(),
        snapshot_file,
        stop_rx.clone(),
    );

    let api_router = tollgate_admin::router(state.clone());
    let gateway_url = format!("http://{}", reachable(proxy_addr));
    let web_settings = tollgate_web::WebSettings {
        public_gateway_url: args
            .public_url
            .clone()
            .unwrap_or_else(|| gateway_url.clone()),
        gateway_url,
    };
    let admin_router = api_router.clone().merge(tollgate_web::dashboard(
        state.clone(),
        api_router.clone(),
        web_settings.clone(),
    ));
    let portal_task = portal_listener.map(|listener| {
        let router = tollgate_web::portal(state.clone(), api_router.clone(), web_settings);
        let mut stop = stop_rx.clone();
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "developer portal");
        }
        tokio::spawn(async move {
            let served = axum::serve(
                listener,
                router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|stop| *stop).await;
            })
            .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "portal listener failed");
            }
        })
    });
    let mut admin_stop = stop_rx.clone();
    let admin_task = tokio::spawn(async move {
        let served = axum::serve(
            admin_listener,
            admin_router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = admin_stop.wait_for(|stop| *stop).await;
        })
        .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "admin listener failed");
        }
    });

    if let Some(extras) = extras {
        let token = made_token.clone().unwrap_or_default();
        (extras.on_ready)(&token);
    }

    let settings = ListenerSettings {
        max_header_bytes: usize::try_from(args.max_header_size.0).unwrap_or(usize::MAX),
        header_read_timeout: args.header_timeout.as_std(),
        drain_timeout: args.drain_timeout.as_std(),
        ..ListenerSettings::default()
    };
    let workers = args
        .workers
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .max(1);
    let extra = spawn_proxy_workers(
        workers - 1,
        &proxy_listener,
        tls_listener.as_ref(),
        &gateway,
        &settings,
        &stop_rx,
    )?;
    let spare = serve_spare_sockets(
        &proxy_listener,
        tls_listener.as_ref(),
        &gateway,
        &settings,
        &stop_rx,
    )?;
    let mut handover = handover.serving(stop_rx.clone()).await;
    let stop_all = async move {
        tokio::select! {
            () = shutdown_signal() => {}
            () = handover.taken_over() => {}
        }
        let _ = stop_tx.send(true);
    };
    match tls_listener {
        Some(tls) => {
            let mut stop = stop_rx.clone();
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            tokio::join!(
                tollgate_gateway::serve(
                    proxy_listener,
                    gateway.clone(),
                    settings.clone(),
                    stop_all
                ),
                tollgate_gateway::serve_tls(tls, gateway.clone(), settings, stopped),
            );
        }
        None => tollgate_gateway::serve(proxy_listener, gateway.clone(), settings, stop_all).await,
    }
    // Joined off this thread: its runtime still runs the admin API and the hand-over
    // socket (which closes its copies of the listening sockets) while other workers drain.
    let _ = tokio::task::spawn_blocking(move || {
        for worker in extra {
            let _ = worker.join();
        }
    })
    .await;
    for task in spare {
        let _ = task.await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), admin_task).await;
    if let Some(task) = portal_task {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    background.abort();
    webhook_worker.abort();
    credit_watch.abort();
    analytics_retention.abort();
    block_sync.abort();
    if let Some(t) = alerts {
        t.abort();
    }
    if let Some(t) = quota_notices {
        t.abort();
    }
    quota_flusher.abort();
    if let Err(e) = gateway.limits.quotas.flush().await {
        tracing::warn!(error = %e, "quota counters of the last second were not saved");
    }
    insight_flusher.abort();
    let _ = tokio::time::timeout(Duration::from_secs(2), gateway.insight.drain()).await;
    if let Err(e) = gateway.insight.flush().await {
        tracing::warn!(error = %e, "analytics of the last seconds were not saved");
    }
    if let Some(t) = insight_folder {
        t.abort();
    }
    if let Some(t) = span_exporter {
        t.abort();
    }
    let access_log = gateway.access_log.clone();
    let _ = tokio::task::spawn_blocking(move || access_log.close()).await;
    usage_flusher.abort();
    if let Err(e) = gateway.meter.flush().await {
        tracing::warn!(error = %e, "usage counts of the last second were not saved");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Starts `count` more proxy workers, each a thread with its own single-threaded runtime
/// accepting on its own socket bound to the listener's address (`SO_REUSEPORT`), all
/// stopping when `stop` turns true.
fn spawn_proxy_workers(
    count: usize,
    listener: &TcpListener,
    tls_listener: Option<&TcpListener>,
    gateway: &Arc<Gateway>,
    settings: &ListenerSettings,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<std::thread::JoinHandle<()>>, Failure> {
    let fail = |e: std::io::Error| Failure::Runtime(format!("cannot start a proxy worker: {e}"));
    // Each worker listens on a socket of its own, bound to the same address: one a previous
    // node handed over, or a new one.
    let own = |l: &TcpListener, what: &str| -> std::io::Result<std::net::TcpListener> {
        let addr = l.local_addr()?;
        let socket = match handover::take(what, addr) {
            Some(inherited) => inherited,
            None => bind_shared_port(addr)?.into_std()?,
        };
        handover::keep(what, &socket);
        Ok(socket)
    };
    let mut threads = Vec::with_capacity(count);
    for i in 1..=count {
        let socket = own(listener, PROXY).map_err(fail)?;
        let tls_socket = match tls_listener {
            Some(l) => Some(own(l, PROXY_TLS).map_err(fail)?),
            None => None,
        };
        let (gateway, settings, mut stop) = (gateway.clone(), settings.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name(format!("tollgate-proxy-{i}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, worker = i, "proxy worker could not start");
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match TcpListener::from_std(socket) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(error = %e, worker = i, "proxy worker could not listen");
                            return;
                        }
                    };
                    let mut tls_stop = stop.clone();
                    let stopped = async move {
                        let _ = stop.wait_for(|s| *s).await;
                    };
                    let tls = tls_socket.and_then(|s| TcpListener::from_std(s).ok());
                    match tls {
                        Some(tls) => {
                            let tls_stopped = async move {
                                let _ = tls_stop.wait_for(|s| *s).await;
                            };
                            tokio::join!(
                                tollgate_gateway::serve(listener, gateway.clone(), settings.clone(), stopped),
                                tollgate_gateway::serve_tls(tls, gateway, settings, tls_stopped),
                            );
                        }
                        None => tollgate_gateway::serve(listener, gateway, settings, stopped).await,
                    }
                });
                rt.shutdown_timeout(Duration::from_millis(200));
            })
            .map_err(fail)?;
        threads.push(thread);
    }
    Ok(threads)
}

/// Serves the proxy sockets a previous node handed over beyond one per worker (it had
/// more workers): connections are waiting in their queues. They run on this thread.
fn serve_spare_sockets(
    listener: &TcpListener,
    tls_listener: Option<&TcpListener>,
    gateway: &Arc<Gateway>,
    settings: &ListenerSettings,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, Failure> {
    let fail =
        |e: std::io::Error| Failure::Runtime(format!("cannot serve an inherited socket: {e}"));
    let mut tasks = Vec::new();
    for (role, l) in [(PROXY, Some(listener)), (PROXY_TLS, tls_listener)] {
        let Some(l) = l else { continue };
        for socket in handover::take_all(role, l.local_addr().map_err(fail)?) {
            handover::keep(role, &socket);
            let socket = TcpListener::from_std(socket).map_err(fail)?;
            let (gateway, settings, mut stop) = (gateway.clone(), settings.clone(), stop.clone());
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            tasks.push(if role == PROXY {
                tokio::spawn(tollgate_gateway::serve(socket, gateway, settings, stopped))
            } else {
                tokio::spawn(tollgate_gateway::serve_tls(
                    socket, gateway, settings, stopped,
                ))
            });
        }
    }
    Ok(tasks)
}

/// Keeps the gateway at the store's revision (changes made by other nodes or tools), the
/// node's heartbeat in the store (`GET /api/nodes`) and the metrics exporter tidy.
fn spawn_background(
    store: Arc<Store>,
    gateway: Arc<Gateway>,
    prometheus: PrometheusHandle,
    node: String,
    snapshot: PathBuf,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let unix_now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    };
    let started_at = unix_now();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks = 0u64;
        // On PostgreSQL a change made on any node wakes this loop at once.
        let mut changes = store.listen_changes();
        loop {
            let notified = tokio::select! {
                _ = tick.tick() => false,
                Some(()) = async { match changes.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => true,
                _ = stop.changed() => return,
            };
            if notified {
                if let Err(e) = sync_from_store(&store, &gateway, Some(&snapshot)).await {
                    tracing::warn!(error = %e, "cannot take the announced configuration change; retrying within a second");
                }
                continue;
            }
            // Judged within a second, as /readyz does, whatever the pool's own timeouts.
            let store_up = tollgate_admin::store_reachable(&store).await;
            metrics::gauge!("tollgate_store_up").set(if store_up { 1.0 } else { 0.0 });
            if store_up {
                // A store opened while it was down gets its migrations once it answers.
                let synced = match store.ensure_started().await {
                    Ok(()) => sync_from_store(&store, &gateway, Some(&snapshot)).await,
                    Err(e) => Err(tollgate_admin::SyncError::Store(e)),
                };
                if let Err(e) = synced {
                    tracing::warn!(error = %e, "cannot refresh the configuration from the store; serving the current one");
                }
                if ticks.is_multiple_of(tollgate_admin::HEARTBEAT_SECS as u64) {
                    let beat = tollgate_store::NodeRow {
                        name: node.clone(),
                        version: env!("CARGO_PKG_VERSION").to_string(),
                        started_at,
                        heartbeat_at: unix_now(),
                        revision: gateway.revision(),
                    };
                    if let Err(e) = store.heartbeat(&beat).await {
                        tracing::debug!(error = %e, "cannot write the node heartbeat");
                    }
                }
                if ticks.is_multiple_of(3600) {
                    let _ = store
                        .prune_nodes(unix_now() - tollgate_admin::FORGET_AFTER_SECS)
                        .await;
                }
            } else {
                tracing::warn!("the store does not answer; serving the current configuration");
            }
            ticks += 1;
            if ticks.is_multiple_of(5) {
                prometheus.run_upkeep();
            }
        }
    })
}

/// How often quota counters are written to the store: what a crash can lose at most.
const QUOTA_FLUSH: Duration = Duration::from_secs(1);

/// How often usage counts are written: what a crash can lose at most.
const USAGE_FLUSH: Duration = Duration::from_secs(1);

/// How often analytics aggregates are written: how fresh the analytics queries are.
const INSIGHT_FLUSH: Duration = Duration::from_secs(2);

/// Analytics aggregates kept in the store.
struct Aggregates(Arc<Store>);

impl tollgate_insight::AggregateStore for Aggregates {
    fn put(
        &self,
        node: &str,
        rows: Vec<tollgate_insight::Row>,
    ) -> BoxFuture<'_, Result<(), String>> {
        let node = node.to_string();
        Box::pin(async move {
            let rows: Vec<tollgate_store::AggregateRow> = rows
                .into_iter()
                .map(|r| tollgate_store::AggregateRow {
                    minute: r.key.minute,
                    api: r.key.api.to_string(),
                    version: r.key.version.to_string(),
                    route: r.key.route.to_string(),
                    app: r.key.app.to_string(),
                    class: i16::from(r.key.class),
                    requests: r.requests,
                    total: r.total,
                    gateway: r.gateway,
                    upstream: r.upstream,
                })
                .collect();
            self.0
                .put_aggregates(&node, &rows)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// Usage counts kept in the store.
struct UsageRows(Arc<Store>);

impl UsageStore for UsageRows {
    fn put(&self, node: &str, rows: Vec<UsageRow>) -> BoxFuture<'_, Result<(), String>> {
        let node = node.to_string();
        Box::pin(async move {
            let rows: Vec<(String, i64, u64, u64)> = rows
                .into_iter()
                .map(|r| (r.subscription, r.minute, r.requests, r.billable))
                .collect();
            self.0
                .put_usage(&node, &rows)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// Quota counters kept in the store.
struct QuotaCounters(Arc<Store>);

impl QuotaStore for QuotaCounters {
    fn add(&self, deltas: Deltas) -> BoxFuture<'_, Result<Vec<u64>, String>> {
        Box::pin(async move {
            self.0
                .add_quota_usage(&deltas)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn load(&self, periods: Vec<String>) -> BoxFuture<'_, Result<Deltas, String>> {
        Box::pin(async move {
            self.0
                .quota_usage(&periods)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// The machine's host name, the default node name.
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "tollgate".to_string())
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutdown requested; draining");
}
