//! Detectors on the event stream (DESIGN §6): bursts of 401/403 from one client address,
//! 404 enumeration from one address, and one app's credentials used from unusually many
//! addresses. Each raises an [`Alert`] at most once per window and subject; a detector can
//! ask for the subject to be blocked for a while.
//!
//! Pure state over time: the folding task feeds every event with the current second, so
//! the detectors are tested with synthetic traffic and a synthetic clock.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

/// What one detector looks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Events in the window that fire the alert (for key sharing: distinct addresses).
    pub threshold: u64,
    /// Seconds.
    pub window: u64,
    /// Seconds the subject is blocked after an alert (0: alert only).
    pub block: u64,
}

/// Every detector's rule; `None` turns one off.
#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    pub auth_failures: Option<Rule>,
    pub enumeration: Option<Rule>,
    pub key_sharing: Option<Rule>,
    /// Traffic, error-rate and latency spikes per API.
    pub spikes: Option<crate::spikes::SpikeRule>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            auth_failures: Some(Rule {
                threshold: 30,
                window: 60,
                block: 0,
            }),
            enumeration: Some(Rule {
                threshold: 100,
                window: 60,
                block: 0,
            }),
            key_sharing: Some(Rule {
                threshold: 50,
                window: 600,
                block: 0,
            }),
            spikes: Some(crate::spikes::SpikeRule::default()),
        }
    }
}

/// Who an alert is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    Address(IpAddr),
    App(Arc<str>),
    Api(Arc<str>),
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Address(ip) => write!(f, "address {ip}"),
            Subject::App(a) => write!(f, "app {a}"),
            Subject::Api(a) => write!(f, "API {a}"),
        }
    }
}

/// A detector fired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    /// `auth_failures`, `enumeration` or `key_sharing`.
    pub detector: &'static str,
    pub subject: Subject,
    /// The API most of the offending requests went to (`""` when none matched).
    pub api: String,
    /// What was counted in the window.
    pub observed: u64,
    pub threshold: u64,
    pub window: u64,
    /// Unix seconds; when set, the subject is refused until then.
    pub blocked_until: Option<i64>,
    /// Unix seconds.
    pub at: i64,
}

impl Alert {
    pub fn message(&self) -> String {
        match self.detector {
            "traffic_spike" => {
                return format!(
                    "{}: {} requests in a minute, against a usual {} for this hour",
                    self.subject, self.observed, self.threshold
                );
            }
            "error_spike" => {
                return format!(
                    "{}: {:.1} % of a minute's answers were 5xx, against a usual {:.1} % for this hour",
                    self.subject,
                    self.observed as f64 / 10.0,
                    self.threshold as f64 / 10.0
                );
            }
            "latency_spike" => {
                return format!(
                    "{}: p95 latency {} ms in a minute, against a usual {} ms for this hour",
                    self.subject, self.observed, self.threshold
                );
            }
            _ => {}
        }
        let what = match self.detector {
            "auth_failures" => "401/403 answers",
            "enumeration" => "404 answers",
            _ => "distinct client addresses",
        };
        let mut m = format!(
            "{}: {} {what} in {} s (threshold {})",
            self.subject, self.observed, self.window, self.threshold
        );
        if !self.api.is_empty() {
            m.push_str(&format!(" on API `{}`", self.api));
        }
        if self.blocked_until.is_some() {
            m.push_str("; blocked for a while");
        }
        m
    }
}

/// What the detectors need of a request.
#[derive(Clone, Debug)]
pub struct Seen<'a> {
    pub at: i64,
    pub client_ip: IpAddr,
    pub app: Option<&'a Arc<str>>,
    pub api: &'a str,
    pub status: u16,
}

/// Subjects tracked per detector at most; beyond, the oldest windows are forgotten.
const MAX_SUBJECTS: usize = 100_000;

#[derive(Default)]
struct Count {
    start: i64,
    n: u64,
    /// Requests per API in this window, for the alert's `api` (a few entries).
    apis: HashMap<String, u64>,
    /// Fired in this window already.
    fired: bool,
}

#[derive(Default)]
struct Spread {
    start: i64,
    addresses: HashSet<IpAddr>,
    fired: bool,
}

/// The detectors' state.
#[derive(Default)]
pub struct Detectors {
    pub rules: Rules,
    /// The per-API spike detectors.
    pub spikes: crate::spikes::Spikes,
    auth: HashMap<IpAddr, Count>,
    enumeration: HashMap<IpAddr, Count>,
    sharing: HashMap<Arc<str>, Spread>,
}

fn count(
    map: &mut HashMap<IpAddr, Count>,
    rule: &Rule,
    ip: IpAddr,
    s: &Seen<'_>,
    detector: &'static str,
) -> Option<Alert> {
    if map.len() >= MAX_SUBJECTS && !map.contains_key(&ip) {
        let at = s.at;
        map.retain(|_, c| at - c.start < rule.window as i64);
        if map.len() >= MAX_SUBJECTS {
            return None;
        }
    }
    let c = map.entry(ip).or_default();
    if s.at - c.start >= rule.window as i64 {
        *c = Count {
            start: s.at,
            ..Count::default()
        };
    }
    c.n += 1;
    if c.apis.len() < 8 || c.apis.contains_key(s.api) {
        *c.apis.entry(s.api.to_string()).or_default() += 1;
    }
    if c.n >= rule.threshold && !c.fired {
        c.fired = true;
        let api = c
            .apis
            .iter()
            .max_by_key(|(name, n)| (**n, std::cmp::Reverse((*name).clone())))
            .map(|(a, _)| a.clone())
            .unwrap_or_default();
        return Some(Alert {
            detector,
            subject: Subject::Address(ip),
            api,
            observed: c.n,
            threshold: rule.threshold,
            window: rule.window,
            blocked_until: (rule.block > 0).then(|| s.at + rule.block as i64),
            at: s.at,
        });
    }
    None
}

impl Detectors {
    pub fn new(rules: Rules) -> Detectors {
        Detectors {
            spikes: crate::spikes::Spikes::new(rules.spikes.clone()),
            rules,
            ..Detectors::default()
        }
    }

    /// Feeds one answered request of an API to the spike detectors; answers the alerts of
    /// a minute that just closed.
    pub fn observe_api(
        &mut self,
        api: &Arc<str>,
        minute: i64,
        status: u16,
        total_us: u64,
    ) -> Vec<Alert> {
        self.spikes
            .observe(api, minute, status, total_us)
            .into_iter()
            .map(|s| {
                // Error rates in tenths of a percent, latency in ms.
                let scale = if s.detector == "error_spike" {
                    1000.0
                } else {
                    1.0
                };
                Alert {
                    detector: s.detector,
                    subject: Subject::Api(s.api.clone()),
                    api: s.api.to_string(),
                    observed: (s.value * scale).round() as u64,
                    threshold: (s.baseline * scale).round() as u64,
                    window: 60,
                    blocked_until: None,
                    at: (s.minute + 1) * 60,
                }
            })
            .collect()
    }

    /// Feeds one request; answers the alerts it fires.
    pub fn observe(&mut self, s: &Seen<'_>) -> Vec<Alert> {
        let mut out = Vec::new();
        if matches!(s.status, 401 | 403)
            && let Some(rule) = &self.rules.auth_failures
            && let Some(a) = count(&mut self.auth, rule, s.client_ip, s, "auth_failures")
        {
            out.push(a);
        }
        if s.status == 404
            && let Some(rule) = &self.rules.enumeration
            && let Some(a) = count(&mut self.enumeration, rule, s.client_ip, s, "enumeration")
        {
            out.push(a);
        }
        if let (Some(app), Some(rule)) = (s.app, &self.rules.key_sharing)
            && s.status < 400
        {
            if self.sharing.len() >= MAX_SUBJECTS && !self.sharing.contains_key(app) {
                let at = s.at;
                self.sharing
                    .retain(|_, c| at - c.start < rule.window as i64);
            }
            if self.sharing.len() < MAX_SUBJECTS || self.sharing.contains_key(app) {
                let sp = self.sharing.entry(app.clone()).or_default();
                if s.at - sp.start >= rule.window as i64 {
                    *sp = Spread {
                        start: s.at,
                        ..Spread::default()
                    };
                }
                // One more than the threshold is all that needs remembering.
                if (sp.addresses.len() as u64) < rule.threshold + 1 {
                    sp.addresses.insert(s.client_ip);
                }
                let seen = sp.addresses.len() as u64;
                if seen >= rule.threshold && !sp.fired {
                    sp.fired = true;
                    out.push(Alert {
                        detector: "key_sharing",
                        subject: Subject::App(app.clone()),
                        api: s.api.to_string(),
                        observed: seen,
                        threshold: rule.threshold,
                        window: rule.window,
                        blocked_until: (rule.block > 0).then(|| s.at + rule.block as i64),
                        at: s.at,
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n))
    }

    fn seen<'a>(at: i64, n: u32, app: Option<&'a Arc<str>>, status: u16) -> Seen<'a> {
        Seen {
            at,
            client_ip: ip(n),
            app,
            api: "orders",
            status,
        }
    }

    fn rules() -> Rules {
        Rules {
            auth_failures: Some(Rule {
                threshold: 10,
                window: 60,
                block: 600,
            }),
            enumeration: Some(Rule {
                threshold: 20,
                window: 60,
                block: 0,
            }),
            key_sharing: Some(Rule {
                threshold: 5,
                window: 600,
                block: 0,
            }),
            spikes: None,
        }
    }

    /// A normal day: 20 apps, each from its own 2 addresses, mostly 200s, a few 401s
    /// (expired keys), 404s spread over many clients.
    fn normal_day(d: &mut Detectors) -> Vec<Alert> {
        let apps: Vec<Arc<str>> = (0..20).map(|i| Arc::from(format!("app{i}"))).collect();
        let mut alerts = Vec::new();
        for t in 0..86_400i64 {
            if t % 3 != 0 {
                continue;
            }
            let i = (t / 3) as usize;
            let app = &apps[i % 20];
            let addr = (i % 20) as u32 * 2 + (i % 2) as u32;
            let status = match i % 200 {
                0 => 401,
                1 => 404,
                _ => 200,
            };
            let app = (status != 401).then_some(app);
            alerts.extend(d.observe(&seen(t, addr, app, status)));
        }
        alerts
    }

    #[test]
    fn a_normal_day_raises_nothing() {
        let mut d = Detectors::new(rules());
        assert_eq!(normal_day(&mut d), vec![]);
    }

    #[test]
    fn a_burst_of_auth_failures_from_one_address_fires_once_and_blocks() {
        let mut d = Detectors::new(rules());
        let mut alerts = Vec::new();
        for k in 0..30 {
            alerts.extend(d.observe(&seen(1000 + k / 5, 99, None, 401)));
        }
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let a = &alerts[0];
        assert_eq!(a.detector, "auth_failures");
        assert_eq!(a.subject, Subject::Address(ip(99)));
        assert_eq!(a.observed, 10);
        assert_eq!(a.blocked_until, Some(1001 + 600));
        assert_eq!(a.api, "orders");
        // The same rate spread over many addresses is not a burst.
        let mut d = Detectors::new(rules());
        let spread: Vec<Alert> = (0..30)
            .flat_map(|k| d.observe(&seen(1000, k, None, 403)))
            .collect();
        assert!(spread.is_empty());
        // A new window may fire again.
        let mut d = Detectors::new(rules());
        let twice: usize = (0..2)
            .map(|w| {
                (0..10)
                    .flat_map(|_| d.observe(&seen(5000 + w * 120, 7, None, 401)))
                    .count()
            })
            .sum();
        assert_eq!(twice, 2);
    }

    #[test]
    fn enumeration_fires_on_many_404s_from_one_address() {
        let mut d = Detectors::new(rules());
        let alerts: Vec<Alert> = (0..25)
            .flat_map(|_| d.observe(&seen(10, 3, None, 404)))
            .collect();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].detector, "enumeration");
        assert_eq!(alerts[0].observed, 20);
        assert_eq!(alerts[0].blocked_until, None);
    }

    #[test]
    fn one_app_from_many_addresses_is_key_sharing() {
        let mut d = Detectors::new(rules());
        let app: Arc<str> = Arc::from("leaky");
        let alerts: Vec<Alert> = (0..12)
            .flat_map(|k| d.observe(&seen(100 + k as i64, k, Some(&app), 200)))
            .collect();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].subject, Subject::App(app.clone()));
        assert_eq!(alerts[0].observed, 5);
        // Many calls from few addresses are not.
        let mut d = Detectors::new(rules());
        let quiet: Vec<Alert> = (0..1000)
            .flat_map(|k| d.observe(&seen(100 + k, k as u32 % 4, Some(&app), 200)))
            .collect();
        assert!(quiet.is_empty());
    }

    #[test]
    fn turned_off_detectors_stay_quiet() {
        let mut d = Detectors::new(Rules {
            auth_failures: None,
            enumeration: None,
            key_sharing: None,
            spikes: None,
        });
        let app: Arc<str> = Arc::from("a");
        for k in 0..500 {
            assert!(
                d.observe(&seen(1, k, Some(&app), [200, 401, 404][k as usize % 3]))
                    .is_empty()
            );
        }
    }
}
