//! The route table: configuration input, build-time validation, and the
//! per-request lookup.
//!
//! This module owns the public routing API: [`RouteSpec`] (one configured
//! route), [`RouteTableBuilder`] (validation and conflict detection),
//! [`RouteTable`] (the immutable, shareable result) and the lookup result
//! types [`Match`] and [`Found`]. Host-table selection lives here; the
//! per-host path search is in the `trie` module.

use std::collections::HashMap;

use crate::error::BuildError;
use crate::host::{HostKey, MAX_HOST_LEN, canonical_request_host, parse_config_host};
use crate::pattern::{self, Pattern, Segment};
use crate::trie::{Query, Trie, next_segment};

/// One configured route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec<T> {
    /// Route pattern, e.g. `/v1/orders/{id}` (prefix) or `=/v1/ping`
    /// (exact). See the [crate docs](crate) for the grammar.
    pub pattern: String,
    /// Accepted methods; empty means any method. Tokens are upper-cased when
    /// added; request methods are compared case-sensitively.
    pub methods: Vec<String>,
    /// Accepted hosts; empty means any host. Entries are exact hostnames or
    /// `*.example.com` wildcards (matching any host with at least one more
    /// label, but not `example.com` itself). Compared lower-case; the
    /// request's `:port` is ignored.
    pub hosts: Vec<String>,
    /// Header conditions; all must hold. Names are case-insensitive, values
    /// are compared exactly. A name starting with `?` is a query parameter
    /// (case-sensitive), looked up through the same function as headers. A name
    /// prefixed with `!` (`!accept-version`, `!?version`) holds when the header or
    /// parameter is absent; its value is ignored.
    pub headers: Vec<(String, String)>,
    /// The payload returned on a match.
    pub value: T,
}

impl<T> RouteSpec<T> {
    /// A route for any method, host and headers.
    pub fn new(pattern: impl Into<String>, value: T) -> Self {
        RouteSpec {
            pattern: pattern.into(),
            methods: Vec::new(),
            hosts: Vec::new(),
            headers: Vec::new(),
            value,
        }
    }

    /// Restrict to these methods.
    pub fn methods<I: IntoIterator<Item = S>, S: Into<String>>(mut self, methods: I) -> Self {
        self.methods.extend(methods.into_iter().map(Into::into));
        self
    }

    /// Restrict to these hosts.
    pub fn hosts<I: IntoIterator<Item = S>, S: Into<String>>(mut self, hosts: I) -> Self {
        self.hosts.extend(hosts.into_iter().map(Into::into));
        self
    }

    /// Add a header condition.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A validated route.
#[derive(Debug)]
pub(crate) struct Route<T> {
    /// Position of the spec among `add` calls.
    pub(crate) index: usize,
    /// The pattern as configured.
    pub(crate) pattern: Box<str>,
    pub(crate) parsed: Pattern,
    param_count: usize,
    /// Upper-case, sorted, deduplicated; empty = any.
    pub(crate) methods: Box<[Box<str>]>,
    /// Sorted, deduplicated; empty = any.
    hosts: Box<[HostKey]>,
    /// Lower-case names, sorted by name.
    pub(crate) headers: Box<[(Box<str>, Box<str>)]>,
    value: T,
}

/// Collects and validates [`RouteSpec`]s, then builds a [`RouteTable`].
///
/// Each call to [`add`](Self::add) consumes the next index (0, 1, 2, …),
/// even when it fails, so indices in errors always equal the position of
/// the spec in the caller's list.
#[derive(Debug)]
pub struct RouteTableBuilder<T> {
    routes: Vec<Route<T>>,
    next_index: usize,
}

impl<T> Default for RouteTableBuilder<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> RouteTableBuilder<T> {
    /// An empty builder.
    pub fn new() -> Self {
        RouteTableBuilder {
            routes: Vec::new(),
            next_index: 0,
        }
    }

    /// Validate a spec (pattern, methods, hosts, headers) and queue it.
    /// Conflicts between routes are detected by [`build`](Self::build).
    pub fn add(&mut self, spec: RouteSpec<T>) -> Result<(), BuildError> {
        let index = self.next_index;
        self.next_index += 1;
        let route = validate(index, spec)?;
        self.routes.push(route);
        Ok(())
    }

    /// Build the table, rejecting conflicting routes (see [`BuildError`]).
    /// Conflicts are checked in `add` order and the first one is reported.
    pub fn build(self) -> Result<RouteTable<T>, BuildError> {
        let routes = self.routes;
        let mut any_host = Trie::new();
        let mut exact_hosts: HashMap<Box<str>, Trie> = HashMap::new();
        let mut wildcard_hosts: HashMap<Box<str>, Trie> = HashMap::new();
        for (id, route) in routes.iter().enumerate() {
            if route.hosts.is_empty() {
                any_host.insert(&routes, id, "any host")?;
            }
            for host in &route.hosts {
                let (map, key) = match host {
                    HostKey::Exact(h) => (&mut exact_hosts, h),
                    HostKey::Wildcard(s) => (&mut wildcard_hosts, s),
                };
                map.entry(key.clone()).or_insert_with(Trie::new).insert(
                    &routes,
                    id,
                    &host.to_string(),
                )?;
            }
        }
        any_host.finish(&routes);
        for trie in exact_hosts.values_mut().chain(wildcard_hosts.values_mut()) {
            trie.finish(&routes);
        }
        Ok(RouteTable {
            routes,
            any_host,
            exact_hosts,
            wildcard_hosts,
        })
    }
}

fn validate<T>(index: usize, spec: RouteSpec<T>) -> Result<Route<T>, BuildError> {
    let RouteSpec {
        pattern,
        methods,
        hosts,
        headers,
        value,
    } = spec;
    let parsed = match pattern::parse(&pattern) {
        Ok(parsed) => parsed,
        Err(source) => {
            return Err(BuildError::Pattern {
                index,
                pattern,
                source,
            });
        }
    };

    let mut method_list = Vec::with_capacity(methods.len());
    for method in methods {
        if method.is_empty() || !method.bytes().all(is_tchar) {
            return Err(BuildError::InvalidMethod {
                index,
                pattern,
                method,
            });
        }
        method_list.push(method.to_ascii_uppercase().into_boxed_str());
    }
    method_list.sort();
    method_list.dedup();

    let mut host_list = Vec::with_capacity(hosts.len());
    for host in hosts {
        match parse_config_host(&host) {
            Ok(key) => host_list.push(key),
            Err(reason) => {
                return Err(BuildError::InvalidHost {
                    index,
                    pattern,
                    host,
                    reason,
                });
            }
        }
    }
    host_list.sort();
    host_list.dedup();

    let mut header_list: Vec<(Box<str>, Box<str>)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        // `?name` is a query parameter condition; its name keeps its case. A leading `!`
        // turns a condition into "absent" (its value is ignored).
        let bare = name.strip_prefix('!').unwrap_or(&name);
        let query = bare.strip_prefix('?');
        let reason = if let Some(param) = query {
            (param.is_empty()
                || param
                    .bytes()
                    .any(|b| b <= 0x20 || b == 0x7f || matches!(b, b'&' | b'=' | b'#' | b'?')))
            .then_some("not a valid query parameter name")
        } else if bare.is_empty() || !bare.bytes().all(is_tchar) {
            Some("not a valid header name")
        } else if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            Some("value contains a control character")
        } else if header_list
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(&name))
        {
            Some("the same header is listed twice")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(BuildError::InvalidHeader {
                index,
                pattern,
                name,
                reason,
            });
        }
        let name = if query.is_some() {
            name
        } else {
            name.to_ascii_lowercase()
        };
        header_list.push((name.into(), value.into()));
    }
    header_list.sort();

    Ok(Route {
        index,
        pattern: pattern.into_boxed_str(),
        param_count: parsed.param_count(),
        parsed,
        methods: method_list.into(),
        hosts: host_list.into(),
        headers: header_list.into(),
        value,
    })
}

/// RFC 9110 `tchar` (method and header-name characters).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// An immutable route table; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct RouteTable<T> {
    /// Indexed by route id (position among successfully added specs).
    routes: Vec<Route<T>>,
    any_host: Trie,
    exact_hosts: HashMap<Box<str>, Trie>,
    /// Keyed by suffix including the leading dot, e.g. `.example.com`.
    wildcard_hosts: HashMap<Box<str>, Trie>,
}

/// The outcome of [`RouteTable::find`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match<'a, T> {
    /// A route accepts the request.
    Found(Found<'a, T>),
    /// Some route matches host, path and headers, but none accepts the
    /// method. `allow` lists (sorted, deduplicated) every method that some
    /// such route accepts, i.e. the methods that would be routed — suitable
    /// for an `Allow` header.
    MethodNotAllowed {
        /// Methods that would be accepted for this host, path and headers.
        allow: Vec<&'a str>,
    },
    /// No route matches.
    NotFound,
}

/// A successful match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<'a, T> {
    /// The matched route's payload.
    pub value: &'a T,
    /// `{name}` bindings in pattern order. Values are path segments in
    /// normalised form (reserved characters stay percent-encoded, e.g.
    /// `a%2Fb`), so they can be substituted into an upstream path as-is.
    pub params: Vec<(&'a str, String)>,
    /// The path after the matched pattern, always starting with `/`: for
    /// `/v1/orders` on `/v1/orders/42` it is `/42`, on `/v1/orders` or
    /// `/v1/orders/` it is `/`. Used for `strip_prefix`.
    pub rest: String,
}

impl<'a, T> Found<'a, T> {
    /// The value bound to parameter `name`, if the pattern has it.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A header lookup that never finds anything, for requests (or tests) with
/// no header conditions to satisfy.
pub fn no_headers(_name: &str) -> Option<&'static str> {
    None
}

impl<T> RouteTable<T> {
    /// Number of routes in the table.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether the table has no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Route a request.
    ///
    /// * `host`: the request's `Host` / `:authority`, if any (any case, may
    ///   carry a `:port`). `None` consults only routes without host
    ///   restrictions.
    /// * `method`: the request method, compared case-sensitively.
    /// * `path`: the [normalised](crate::normalize_path) request path. Any
    ///   other string is tolerated; one not starting with `/` is not found.
    /// * `header`: looks up a request header by name. It is called with
    ///   lower-case names; return the value (the first one, if repeated) or
    ///   `None` if absent.
    ///
    /// Host tables are tried in order — exact host, wildcard hosts (longest
    /// suffix first), then routes for any host — and the first table with a
    /// route accepting path, method and headers wins. Within a table the
    /// most specific accepting route wins (see the [crate docs](crate)).
    /// If no table has one but some route failed only on the method, the
    /// answer is [`Match::MethodNotAllowed`], else [`Match::NotFound`].
    ///
    /// Allocates only for the result (`params`, `rest`, `allow`).
    pub fn find<'a, 'h>(
        &'a self,
        host: Option<&str>,
        method: &str,
        path: &str,
        header: &dyn Fn(&str) -> Option<&'h str>,
    ) -> Match<'a, T> {
        if !path.is_empty() && !path.starts_with('/') {
            return Match::NotFound;
        }
        // The root path has no segments (so `=/` matches it exactly).
        let start = if path == "/" { 1 } else { 0 };
        let mut buf = [0; MAX_HOST_LEN];
        let host = host.and_then(|h| canonical_request_host(h, &mut buf));
        let mut query = Query {
            routes: &self.routes,
            path,
            method,
            header,
            method_mismatch: false,
        };
        for trie in self.tables(host) {
            if let Some(candidate) = trie.best(&mut query, start)
                && let Some(route) = self.routes.get(candidate.route)
            {
                return Match::Found(found(route, path, start, candidate.end));
            }
        }
        if !query.method_mismatch {
            return Match::NotFound;
        }
        let mut allow = Vec::new();
        for trie in self.tables(host) {
            trie.collect_allowed(&query, start, &mut allow);
        }
        allow.sort_unstable();
        allow.dedup();
        Match::MethodNotAllowed { allow }
    }

    /// The host tables for a canonical request host, in lookup order.
    fn tables<'s>(&'s self, host: Option<&'s str>) -> impl Iterator<Item = &'s Trie> {
        let exact = host.and_then(|h| self.exact_hosts.get(h));
        let wildcards = host.into_iter().flat_map(move |h| {
            // Each '.' after the first byte starts a candidate suffix;
            // leftmost first = longest first.
            h.match_indices('.')
                .filter(|&(i, _)| i > 0)
                .filter_map(move |(i, _)| h.get(i..).and_then(|s| self.wildcard_hosts.get(s)))
        });
        exact
            .into_iter()
            .chain(wildcards)
            .chain(std::iter::once(&self.any_host))
    }
}

fn found<'a, T>(route: &'a Route<T>, path: &str, start: usize, end: usize) -> Found<'a, T> {
    let mut params = Vec::with_capacity(route.param_count);
    if route.param_count > 0 {
        let mut off = start;
        for segment in &route.parsed.segments {
            let Some((text, next)) = next_segment(path, off) else {
                break;
            };
            if let Segment::Param(name) = segment {
                params.push((&**name, text.to_owned()));
            }
            off = next;
        }
    }
    let rest = match path.get(end..) {
        Some(rest) if !rest.is_empty() => rest.to_owned(),
        _ => "/".to_owned(),
    };
    Found {
        value: &route.value,
        params,
        rest,
    }
}

#[cfg(test)]
mod tests;
