//! Token scopes: the endpoint groups of the admin API. A token may be limited to some
//! groups (`scopes` when it is created); every `/api` route belongs to exactly one group,
//! decided by the longest matching path prefix in [`GROUPS`].

/// One endpoint group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// The configuration: `/api/config`, the change log, upstreams, APIs, versions,
    /// global policies, certificates and the response cache.
    Config,
    /// Developers, apps and their keys.
    Identities,
    /// Products with their plans, and subscriptions.
    Products,
    /// Usage, invoices, prices, credit, notices and webhook deliveries.
    Billing,
    /// Analytics, alerts, nodes and compliance reports.
    Analytics,
    /// The audit log.
    Audit,
    /// Admin tokens and dashboard users.
    Tokens,
}

impl Scope {
    pub const ALL: [Scope; 7] = [
        Scope::Config,
        Scope::Identities,
        Scope::Products,
        Scope::Billing,
        Scope::Analytics,
        Scope::Audit,
        Scope::Tokens,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Config => "config",
            Scope::Identities => "identities",
            Scope::Products => "products",
            Scope::Billing => "billing",
            Scope::Analytics => "analytics",
            Scope::Audit => "audit",
            Scope::Tokens => "tokens",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|g| g.as_str() == s)
    }

    /// Whether a principal with a team may send changes to this group: the configuration
    /// (judged entity by entity when the change is committed) and tokens and users (of its
    /// own team). Nothing in the other groups belongs to a team.
    pub fn open_to_teams(self) -> bool {
        matches!(self, Scope::Config | Scope::Tokens)
    }
}

/// Route prefixes under `/api`, by segment (`{}` stands for any one segment), with their
/// group. A route belongs to the group of its longest matching prefix.
const GROUPS: &[(&str, Scope)] = &[
    ("config", Scope::Config),
    ("changes", Scope::Config),
    ("upstreams", Scope::Config),
    ("apis", Scope::Config),
    ("policies", Scope::Config),
    ("certificates", Scope::Config),
    ("cache", Scope::Config),
    ("developers", Scope::Identities),
    ("apps", Scope::Identities),
    ("products", Scope::Products),
    ("subscriptions", Scope::Products),
    ("subscriptions/{}/credit", Scope::Billing),
    ("usage", Scope::Billing),
    ("invoices", Scope::Billing),
    ("simulate", Scope::Billing),
    ("pricing", Scope::Billing),
    ("notices", Scope::Billing),
    ("webhooks", Scope::Billing),
    ("analytics", Scope::Analytics),
    ("alerts", Scope::Analytics),
    ("nodes", Scope::Analytics),
    ("compliance", Scope::Analytics),
    ("audit", Scope::Audit),
    ("tokens", Scope::Tokens),
    ("users", Scope::Tokens),
];

/// The prefixes of [`GROUPS`] that match `path`, with their length in segments.
fn matching(path: &str) -> impl Iterator<Item = (usize, &'static str, Scope)> {
    let rest = path
        .strip_prefix("/api")
        .filter(|r| r.starts_with('/'))
        .unwrap_or(path);
    let segments: Vec<&str> = rest.trim_matches('/').split('/').collect();
    GROUPS.iter().filter_map(move |&(prefix, scope)| {
        let parts: Vec<&str> = prefix.split('/').collect();
        let fits = parts.len() <= segments.len()
            && parts
                .iter()
                .zip(&segments)
                .all(|(p, s)| *p == "{}" || p == s);
        fits.then_some((parts.len(), prefix, scope))
    })
}

/// The group a request path (`/api/apps/a1/keys`) or route pattern belongs to.
pub fn scope_of(path: &str) -> Option<Scope> {
    matching(path)
        .max_by_key(|(len, _, _)| *len)
        .map(|(_, _, scope)| scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route pattern the admin modules register, read from their source, so a route
    /// added without a group fails here.
    fn registered_routes() -> Vec<(String, String)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut routes = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            // lib.rs holds the routes outside `/api` (health, metrics, the OpenAPI document).
            if path.extension().is_none_or(|e| e != "rs") || file == "lib.rs" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (at, found) in text.match_indices(".route(") {
                let Some(pattern) = text[at + found.len()..].trim_start().strip_prefix('"') else {
                    continue;
                };
                if !pattern.starts_with('/') {
                    continue;
                }
                let end = pattern.find('"').unwrap();
                routes.push((file.clone(), pattern[..end].to_string()));
            }
        }
        routes
    }

    #[test]
    fn every_api_route_belongs_to_exactly_one_group() {
        let routes = registered_routes();
        assert!(
            routes.len() > 40,
            "found only {} routes: {routes:?}",
            routes.len()
        );
        for (file, route) in &routes {
            let found: Vec<_> = matching(route).collect();
            let longest = found.iter().map(|(len, _, _)| *len).max();
            let Some(longest) = longest else {
                panic!("{file}: route `{route}` belongs to no scope; add it to GROUPS")
            };
            let best: Vec<_> = found.iter().filter(|(len, _, _)| *len == longest).collect();
            assert_eq!(
                best.len(),
                1,
                "{file}: route `{route}` matches several groups: {best:?}"
            );
        }
        // No prefix is left over from a route that is gone.
        for (prefix, _) in GROUPS {
            assert!(
                routes
                    .iter()
                    .any(|(_, r)| matching(r).any(|(_, p, _)| p == *prefix)),
                "no route under `{prefix}`"
            );
        }
    }

    #[test]
    fn the_longest_prefix_decides() {
        assert_eq!(
            scope_of("/api/subscriptions/s1/credit"),
            Some(Scope::Billing)
        );
        assert_eq!(
            scope_of("/api/subscriptions/s1/cancel"),
            Some(Scope::Products)
        );
        assert_eq!(scope_of("/subscriptions/{id}/credit"), Some(Scope::Billing));
        assert_eq!(
            scope_of("/api/apis/orders/versions/v1/callers"),
            Some(Scope::Config)
        );
        assert_eq!(scope_of("/api/apps/a1/keys/k1"), Some(Scope::Identities));
        assert_eq!(scope_of("/api/users/ada@example.com"), Some(Scope::Tokens));
        assert_eq!(scope_of("/api/pricing/quote"), Some(Scope::Billing));
        assert_eq!(scope_of("/api/webhooks/deliveries"), Some(Scope::Billing));
        assert_eq!(scope_of("/api/nowhere"), None);
        // `/apis` is not `/api` followed by `s`.
        assert_eq!(scope_of("/apis"), Some(Scope::Config));
    }

    #[test]
    fn scope_names_round_trip() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(Scope::parse("everything"), None);
    }
}
