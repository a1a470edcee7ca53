//! The declarative configuration document (CONTRACT §2): what `tollgate apply` reads,
//! `tollgate export` writes and `PUT /api/config` accepts.
//!
//! Field defaults are chosen so that a minimal file is enough, and every default is
//! skipped when serialising, so an export stays as short as what a person would write.

use serde::{Deserialize, Serialize};

use crate::identity::{App, Developer};
use crate::policy::Policy;
use crate::units::Duration;

/// The whole configuration. Sections this build does not know are rejected by name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// Always `1` for this format.
    pub format_version: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstreams: Vec<Upstream>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apis: Vec<Api>,
    /// Global policies, applied to every route.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<Policy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub developers: Vec<Developer>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<App>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<Certificate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub products: Vec<crate::product::Product>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscriptions: Vec<crate::product::Subscription>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<crate::webhook::Webhook>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub settings: Settings,
    /// How the governance rules judge this configuration and the versions it publishes
    /// (`tollgate lint`, the publish-time check; docs/governance.md).
    #[serde(default, skip_serializing_if = "is_default")]
    pub governance: Governance,
}

/// Governance settings: changes to the built-in lint rules.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Governance {
    /// Rule id → a severity (`error`, `warn`, `info`, `hint`, `off`), or a rule definition:
    /// the fields replacing those of the built-in rule of that id, or a whole new rule.
    /// A rule at `error` blocks publishing a version it finds something in.
    #[serde(default, skip_serializing_if = "indexmap::IndexMap::is_empty")]
    pub rules: indexmap::IndexMap<String, serde_json::Value>,
}

/// Node-wide gateway settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Proxies in front of the gateway whose `X-Forwarded-For` is believed: the client
    /// address is the right-most address of that header not in this list. Without it the
    /// peer address is the client, whatever the header says.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<crate::policy::Cidr>,
    /// TLS termination settings (certificates are in `certificates`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub tls: TlsSettings,
    /// How long analytics are kept at each granularity.
    #[serde(default, skip_serializing_if = "is_default")]
    pub analytics: AnalyticsSettings,
    /// Suspicious-traffic detectors.
    #[serde(default, skip_serializing_if = "is_default")]
    pub detectors: DetectorSettings,
    /// How long notices, webhook deliveries, alerts and rotated access log files are kept.
    #[serde(default, skip_serializing_if = "is_default")]
    pub retention: RetentionSettings,
}

/// How long records other than analytics are kept; older ones are deleted every minute.
/// The audit log is not pruned: it is append-only and hash-chained (archive it with
/// `tollgate audit export`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Developer notices (quota, credit, deprecation).
    #[serde(default = "RetentionSettings::default_notices")]
    pub notices: Duration,
    /// Webhook deliveries that were delivered or gave up (pending ones are kept).
    #[serde(default = "RetentionSettings::default_deliveries")]
    pub webhook_deliveries: Duration,
    /// Alerts whose block, if any, has ended.
    #[serde(default = "RetentionSettings::default_alerts")]
    pub alerts: Duration,
    /// Rotated access log files (`access.log.1` …), by their last change, on every node.
    #[serde(default = "RetentionSettings::default_access_log")]
    pub access_log: Duration,
}

impl RetentionSettings {
    fn default_notices() -> Duration {
        Duration::from_secs(365 * 86_400)
    }

    fn default_deliveries() -> Duration {
        Duration::from_secs(90 * 86_400)
    }

    fn default_alerts() -> Duration {
        Duration::from_secs(365 * 86_400)
    }

    fn default_access_log() -> Duration {
        Duration::from_secs(90 * 86_400)
    }
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            notices: Self::default_notices(),
            webhook_deliveries: Self::default_deliveries(),
            alerts: Self::default_alerts(),
            access_log: Self::default_access_log(),
        }
    }
}

/// One detector: it fires when `threshold` is reached within `window`, and blocks the
/// offender for `block` (0: alert only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorRule {
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
    pub threshold: u64,
    pub window: Duration,
    #[serde(default = "zero", skip_serializing_if = "is_zero_duration")]
    pub block: Duration,
}

fn zero() -> Duration {
    Duration::from_secs(0)
}

fn is_zero_duration(d: &Duration) -> bool {
    d.as_millis() == 0
}

/// The detectors (DESIGN §6). Defaults alert without blocking.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorSettings {
    /// 401/403 answers to one client address.
    #[serde(
        default = "DetectorSettings::auth_failures",
        deserialize_with = "DetectorSettings::auth_failures_over"
    )]
    pub auth_failures: DetectorRule,
    /// 404 answers to one client address (probing for paths or ids).
    #[serde(
        default = "DetectorSettings::enumeration",
        deserialize_with = "DetectorSettings::enumeration_over"
    )]
    pub enumeration: DetectorRule,
    /// Distinct client addresses one app's credentials are used from.
    #[serde(
        default = "DetectorSettings::key_sharing",
        deserialize_with = "DetectorSettings::key_sharing_over"
    )]
    pub key_sharing: DetectorRule,
    /// Traffic, error-rate and latency spikes per API against the same hour on earlier days.
    #[serde(default, skip_serializing_if = "is_default")]
    pub spikes: SpikeSettings,
}

/// When a minute of an API is a spike: more than `sigmas` standard deviations and `factor`
/// times above its hour's usual, with at least `min_requests` requests; an hour judges
/// nothing until it has learnt from `warmup` minutes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpikeSettings {
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
    #[serde(default = "SpikeSettings::sigmas")]
    pub sigmas: f64,
    #[serde(default = "SpikeSettings::factor")]
    pub factor: f64,
    #[serde(default = "SpikeSettings::warmup")]
    pub warmup: u32,
    #[serde(default = "SpikeSettings::min_requests")]
    pub min_requests: u64,
}

impl SpikeSettings {
    fn sigmas() -> f64 {
        4.0
    }

    fn factor() -> f64 {
        3.0
    }

    fn warmup() -> u32 {
        30
    }

    fn min_requests() -> u64 {
        50
    }
}

impl Default for SpikeSettings {
    fn default() -> Self {
        SpikeSettings {
            enabled: true,
            sigmas: Self::sigmas(),
            factor: Self::factor(),
            warmup: Self::warmup(),
            min_requests: Self::min_requests(),
        }
    }
}

impl DetectorSettings {
    fn rule(threshold: u64, window_secs: u64) -> DetectorRule {
        DetectorRule {
            enabled: true,
            threshold,
            window: Duration::from_secs(window_secs),
            block: zero(),
        }
    }

    fn auth_failures() -> DetectorRule {
        Self::rule(30, 60)
    }

    fn enumeration() -> DetectorRule {
        Self::rule(100, 60)
    }

    fn key_sharing() -> DetectorRule {
        Self::rule(50, 600)
    }

    fn auth_failures_over<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<DetectorRule, D::Error> {
        PartialRule::deserialize(d).map(|p| p.over(Self::auth_failures()))
    }

    fn enumeration_over<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DetectorRule, D::Error> {
        PartialRule::deserialize(d).map(|p| p.over(Self::enumeration()))
    }

    fn key_sharing_over<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DetectorRule, D::Error> {
        PartialRule::deserialize(d).map(|p| p.over(Self::key_sharing()))
    }
}

/// A detector's settings as written: what is left out keeps the detector's default (so
/// `{ enabled: false }` or `{ block: 10m }` alone are enough).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartialRule {
    enabled: Option<bool>,
    threshold: Option<u64>,
    window: Option<Duration>,
    block: Option<Duration>,
}

impl PartialRule {
    fn over(self, d: DetectorRule) -> DetectorRule {
        DetectorRule {
            enabled: self.enabled.unwrap_or(d.enabled),
            threshold: self.threshold.unwrap_or(d.threshold),
            window: self.window.unwrap_or(d.window),
            block: self.block.unwrap_or(d.block),
        }
    }
}

impl Default for DetectorSettings {
    fn default() -> Self {
        DetectorSettings {
            auth_failures: Self::auth_failures(),
            enumeration: Self::enumeration(),
            key_sharing: Self::key_sharing(),
            spikes: SpikeSettings::default(),
        }
    }
}

/// Analytics retention: per-minute aggregates are rolled into hours after `minutes`, hours
/// into days after `hours`, and days are deleted after `days`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsSettings {
    #[serde(default = "AnalyticsSettings::default_minutes")]
    pub minutes: Duration,
    #[serde(default = "AnalyticsSettings::default_hours")]
    pub hours: Duration,
    #[serde(default = "AnalyticsSettings::default_days")]
    pub days: Duration,
}

impl AnalyticsSettings {
    fn default_minutes() -> Duration {
        Duration::from_secs(2 * 86_400)
    }

    fn default_hours() -> Duration {
        Duration::from_secs(90 * 86_400)
    }

    fn default_days() -> Duration {
        Duration::from_secs(730 * 86_400)
    }
}

impl Default for AnalyticsSettings {
    fn default() -> Self {
        AnalyticsSettings {
            minutes: Self::default_minutes(),
            hours: Self::default_hours(),
            days: Self::default_days(),
        }
    }
}

/// How the TLS listener behaves.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// Answer plain-HTTP requests with a permanent redirect (308) to HTTPS.
    #[serde(default, skip_serializing_if = "is_default")]
    pub redirect_http: bool,
    /// Port in redirects (default: the TLS listener's port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_port: Option<u16>,
    /// `Strict-Transport-Security` on HTTPS answers, e.g. `max-age=31536000; includeSubDomains`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hsts: Option<String>,
    /// CA certificates (PEM) that client certificates are verified against (`mtls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<String>,
}

/// A server certificate for TLS termination, chosen by SNI.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    pub name: String,
    /// Host names served with it: exact (`api.example.com`) or one wildcard label
    /// (`*.example.com`). A certificate without names is the default for clients that send
    /// no or an unknown SNI.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snis: Vec<String>,
    /// Certificate chain, PEM, leaf first.
    pub cert: String,
    /// Private key, PEM (sealed when stored).
    pub key: String,
}

/// TLS to an upstream's `https://` targets.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// CA certificates (PEM) trusted for the targets, instead of the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// Client certificate chain (PEM) presented to the targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<String>,
    /// Its private key (PEM; sealed when stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
    /// Name checked against the targets' certificates (default: the target's host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

impl Document {
    /// The configuration a non-pruning apply of `self` onto `stored` produces: entries of
    /// `self` replace stored ones of the same name, stored entries `self` lacks are kept.
    /// `self`'s entries come first, so paths into `self` stay valid in the result and
    /// validation errors can point into the file that was applied.
    pub fn merged_over(&self, stored: &Document) -> Document {
        let mut out = self.clone();
        for up in &stored.upstreams {
            if !self.upstreams.iter().any(|u| u.name == up.name) {
                out.upstreams.push(up.clone());
            }
        }
        for api in &stored.apis {
            match out.apis.iter_mut().find(|a| a.name == api.name) {
                Some(mine) => {
                    for v in &api.versions {
                        if !mine.versions.iter().any(|m| m.version == v.version) {
                            mine.versions.push(v.clone());
                        }
                    }
                }
                None => out.apis.push(api.clone()),
            }
        }
        for d in &stored.developers {
            if !self.developers.iter().any(|m| m.email == d.email) {
                out.developers.push(d.clone());
            }
        }
        for a in &stored.apps {
            if !self.apps.iter().any(|m| m.name == a.name) {
                out.apps.push(a.clone());
            }
        }
        for c in &stored.certificates {
            if !self.certificates.iter().any(|m| m.name == c.name) {
                out.certificates.push(c.clone());
            }
        }
        for p in &stored.products {
            if !self.products.iter().any(|m| m.name == p.name) {
                out.products.push(p.clone());
            }
        }
        for s in &stored.subscriptions {
            if !self.subscriptions.iter().any(|m| m.key() == s.key()) {
                out.subscriptions.push(s.clone());
            }
        }
        for w in &stored.webhooks {
            if !self.webhooks.iter().any(|m| m.name == w.name) {
                out.webhooks.push(w.clone());
            }
        }
        if self.settings == Settings::default() {
            out.settings = stored.settings.clone();
        }
        if self.governance == Governance::default() {
            out.governance = stored.governance.clone();
        }
        let mine = crate::entity::policy_names(&self.policies);
        for (name, p) in crate::entity::policy_names(&stored.policies)
            .into_iter()
            .zip(&stored.policies)
        {
            if !mine.contains(&name) {
                out.policies.push(p.clone());
            }
        }
        out
    }
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// A backend service: one or more targets behind a balancer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub name: String,
    pub targets: Vec<Target>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub balance: Balance,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_on: Option<HashOn>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub timeouts: Timeouts,
    /// Extra attempts on another target for idempotent requests that failed to connect.
    #[serde(
        default = "default_retries",
        skip_serializing_if = "is_default_retries"
    )]
    pub retries: u32,
    #[serde(default, skip_serializing_if = "is_default")]
    pub health: Health,
    /// `http1` (default) or `h2c` (HTTP/2 without TLS, prior knowledge; e.g. gRPC services).
    #[serde(default, skip_serializing_if = "is_default")]
    pub protocol: UpstreamProtocol,
    /// TLS settings for `https://` targets.
    #[serde(default, skip_serializing_if = "is_default")]
    pub tls: UpstreamTls,
    /// What this upstream accepts from one node: concurrency and spike arrest.
    #[serde(default, skip_serializing_if = "is_default")]
    pub limits: crate::traffic::UpstreamLimits,
}

fn default_retries() -> u32 {
    1
}

fn is_default_retries(n: &u32) -> bool {
    *n == default_retries()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub url: String,
    #[serde(default = "default_weight", skip_serializing_if = "is_default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    100
}

fn is_default_weight(n: &u32) -> bool {
    *n == default_weight()
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    #[default]
    RoundRobin,
    LeastConn,
    Random,
    Hash,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    #[default]
    Http1,
    H2c,
}

/// What `balance: hash` hashes: `header:NAME`, `cookie:NAME`, `ip` or `app`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashOn {
    Header(String),
    Cookie(String),
    Ip,
    App,
}

impl std::str::FromStr for HashOn {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some(("header", name)) if is_token(name) => {
                Ok(HashOn::Header(name.to_ascii_lowercase()))
            }
            Some(("cookie", name)) if is_token(name) => Ok(HashOn::Cookie(name.to_string())),
            None if s == "ip" => Ok(HashOn::Ip),
            None if s == "app" => Ok(HashOn::App),
            _ => Err(format!(
                "hash_on `{s}` is not one of header:NAME, cookie:NAME, ip, app"
            )),
        }
    }
}

impl std::fmt::Display for HashOn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HashOn::Header(n) => write!(f, "header:{n}"),
            HashOn::Cookie(n) => write!(f, "cookie:{n}"),
            HashOn::Ip => f.write_str("ip"),
            HashOn::App => f.write_str("app"),
        }
    }
}

impl Serialize for HashOn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HashOn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// True for an HTTP token (header names, methods).
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// Time to open a TCP connection to a target.
    pub connect: Duration,
    /// Time to wait for response headers, and between two chunks of the response body.
    pub read: Duration,
    /// Time to wait between two chunks of the request body sent by the client.
    pub write: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            read: Duration::from_secs(60),
            write: Duration::from_secs(60),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<ActiveHealth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passive: Option<PassiveHealth>,
}

/// Periodic probes: a target leaves rotation after `unhealthy` failed probes in a row and
/// comes back after `healthy` successful ones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActiveHealth {
    pub path: String,
    #[serde(default = "default_interval")]
    pub interval: Duration,
    #[serde(default = "default_probe_timeout")]
    pub timeout: Duration,
    #[serde(default = "default_healthy")]
    pub healthy: u32,
    #[serde(default = "default_unhealthy")]
    pub unhealthy: u32,
}

fn default_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_probe_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_healthy() -> u32 {
    2
}
fn default_unhealthy() -> u32 {
    3
}

/// Observed failures: a target leaves rotation after `unhealthy` failed requests in a row
/// (connection errors, timeouts, 5xx answers). Without active probes it is tried again
/// after `cooldown`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassiveHealth {
    #[serde(default = "default_passive_unhealthy")]
    pub unhealthy: u32,
    #[serde(default = "default_cooldown")]
    pub cooldown: Duration,
}

fn default_passive_unhealthy() -> u32 {
    5
}
fn default_cooldown() -> Duration {
    Duration::from_secs(10)
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    Public,
    #[default]
    Private,
}

/// A published API: a name, its owners, and its versions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Api {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub visibility: Visibility,
    /// Policies applied to every route of every version of this API.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<Policy>,
    /// One JSON line per answered request, personal data masked (off without this block).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<AccessLogConfig>,
    /// How callers choose a version (by path when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versioning: Option<Versioning>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<Version>,
}

/// How callers choose a version of an API: by the path each version's routes carry (the
/// default), or by a request header or query parameter naming the version, so that versions
/// can share their paths.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Versioning {
    #[serde(default)]
    pub by: VersionBy,
    /// The header (default `accept-version`) or query parameter (default `version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The version that answers requests naming none (otherwise they match no route).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionBy {
    #[default]
    Path,
    Header,
    Query,
}

impl Versioning {
    /// The router condition naming a version: a header name, or `?param` for a query
    /// parameter; `None` when versions are told apart by path.
    pub fn condition(&self) -> Option<String> {
        match self.by {
            VersionBy::Path => None,
            VersionBy::Header => Some(
                self.name
                    .as_deref()
                    .unwrap_or("accept-version")
                    .to_ascii_lowercase(),
            ),
            VersionBy::Query => Some(format!("?{}", self.name.as_deref().unwrap_or("version"))),
        }
    }
}

impl Api {
    /// The router's view of one route of one of this API's versions: the route's own
    /// conditions plus, when versions are chosen by header or query parameter, the one
    /// naming the version, and for the default version a second spec without it.
    pub fn route_specs<T: Clone>(
        &self,
        version: &Version,
        route: &Route,
        value: T,
    ) -> Vec<tollgate_router::RouteSpec<T>> {
        let mut spec = route.spec(value);
        let Some((versioning, condition)) = self
            .versioning
            .as_ref()
            .and_then(|v| Some((v, v.condition()?)))
        else {
            return vec![spec];
        };
        // The default version also answers requests that name no version (and only those:
        // a request naming another version must not land on a more specific default route).
        let fallback =
            (versioning.default.as_deref() == Some(version.version.as_str())).then(|| {
                let mut f = spec.clone();
                f.headers.push((format!("!{condition}"), String::new()));
                f
            });
        spec.headers.push((condition, version.version.clone()));
        std::iter::once(spec).chain(fallback).collect()
    }
}

/// An API's access log. E-mail addresses, card numbers, bearer tokens, API keys and
/// credential headers are always masked; these settings add to that.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogConfig {
    /// `false` turns the log off while keeping its settings.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
    /// Request headers to include (their values masked).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
    /// Headers whose values are redacted whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mask_headers: Vec<String>,
    /// JSON body fields and query parameters redacted whole (any depth, any case).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mask_fields: Vec<String>,
    /// Include the request body when it is JSON (its first 8 KiB), masked.
    #[serde(default, skip_serializing_if = "is_default")]
    pub body: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionStatus {
    /// Configured but not served: its routes answer 404.
    Draft,
    #[default]
    Published,
    /// Served, with `Deprecation`, `Sunset` and `Link` headers on every answer.
    Deprecated,
    /// Not served any more: its routes answer 410 naming the successor.
    Retired,
}

impl VersionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VersionStatus::Draft => "draft",
            VersionStatus::Published => "published",
            VersionStatus::Deprecated => "deprecated",
            VersionStatus::Retired => "retired",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Version {
    pub version: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub status: VersionStatus,
    /// RFC 3339 time from which the version counts as deprecated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated_at: Option<String>,
    /// RFC 3339 time after which the version may stop answering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sunset_at: Option<String>,
    /// The version that replaces this one (same API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successor: Option<String>,
    /// A page explaining the deprecation, linked with `rel="deprecation"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecation_notice: Option<String>,
    /// Scheduled windows in which a deprecated version answers as if it were retired
    /// (`410`, problem type `version-brownout`), so callers notice before the sunset.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub brownouts: Vec<Brownout>,
    pub upstream: String,
    /// The OpenAPI document of this version, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<Policy>,
}

/// One brownout window: RFC 3339 times, `from` inclusive, `to` exclusive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Brownout {
    pub from: String,
    pub to: String,
}

/// Most brownout windows a version has.
pub const MAX_BROWNOUTS: usize = 100;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Optional name, used in metrics and logs; defaults to the path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `/prefix`, `/prefix/{param}` or `=/exact`.
    pub path: String,
    /// Allowed methods; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Host names (`api.example.com`, `*.example.com`); empty means any host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Request headers that must be present with exactly these values.
    #[serde(default, skip_serializing_if = "indexmap::IndexMap::is_empty")]
    pub headers: indexmap::IndexMap<String, String>,
    /// Forward only the part of the path after the route's pattern.
    #[serde(default, skip_serializing_if = "is_default")]
    pub strip_prefix: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<Policy>,
}

impl Route {
    /// The router's view of this route, carrying `value` on a match. Validation and the
    /// gateway build their tables from this one description.
    pub fn spec<T>(&self, value: T) -> tollgate_router::RouteSpec<T> {
        tollgate_router::RouteSpec {
            pattern: self.path.clone(),
            methods: self.methods.clone(),
            hosts: self.hosts.clone(),
            headers: self
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            value,
        }
    }

    /// The name used in metrics and logs.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.path)
    }
}
