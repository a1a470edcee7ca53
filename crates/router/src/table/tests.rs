use std::collections::HashMap;

use super::*;
use crate::error::ConflictReason;
use crate::pattern::PatternError;

type Table = RouteTable<&'static str>;

fn build(specs: Vec<RouteSpec<&'static str>>) -> Table {
    try_build(specs).unwrap_or_else(|e| panic!("build failed: {e}"))
}

fn try_build(specs: Vec<RouteSpec<&'static str>>) -> Result<Table, BuildError> {
    let mut builder = RouteTableBuilder::new();
    for spec in specs {
        builder.add(spec)?;
    }
    builder.build()
}

fn spec(pattern: &str, value: &'static str) -> RouteSpec<&'static str> {
    RouteSpec::new(pattern, value)
}

/// The matched value for a request without headers, or `None`.
fn hit(t: &Table, host: Option<&str>, method: &str, path: &str) -> Option<&'static str> {
    match t.find(host, method, path, &no_headers) {
        Match::Found(f) => Some(*f.value),
        _ => None,
    }
}

fn found<'a>(t: &'a Table, method: &str, path: &str) -> Found<'a, &'static str> {
    match t.find(None, method, path, &no_headers) {
        Match::Found(f) => f,
        other => panic!("{method} {path}: expected a match, got {other:?}"),
    }
}

#[test]
fn prefix_routes_respect_segment_boundaries() {
    let t = build(vec![spec("/v1/orders", "orders")]);
    for path in ["/v1/orders", "/v1/orders/", "/v1/orders/42/items"] {
        assert_eq!(hit(&t, None, "GET", path), Some("orders"), "{path}");
    }
    for path in [
        "/v1/ordersX",
        "/v1/order",
        "/v1",
        "/",
        "/v2/orders",
        "/V1/orders",
    ] {
        assert_eq!(hit(&t, None, "GET", path), None, "{path}");
    }
}

#[test]
fn exact_routes_match_only_the_exact_path() {
    let t = build(vec![spec("=/v1/ping", "ping")]);
    assert_eq!(hit(&t, None, "GET", "/v1/ping"), Some("ping"));
    for path in ["/v1/ping/", "/v1/ping/x", "/v1", "/v1/pingX"] {
        assert_eq!(hit(&t, None, "GET", path), None, "{path}");
    }
}

#[test]
fn root_patterns() {
    let t = build(vec![spec("/", "all"), spec("=/", "root")]);
    assert_eq!(hit(&t, None, "GET", "/"), Some("root"));
    assert_eq!(hit(&t, None, "GET", "/x"), Some("all"));
    assert_eq!(hit(&t, None, "GET", "/x/y/"), Some("all"));
    assert_eq!(found(&t, "GET", "/x/y/").rest, "/x/y/");
    assert_eq!(found(&t, "GET", "/").rest, "/");
}

#[test]
fn params_bind_one_non_empty_segment() {
    let t = build(vec![spec("/v1/orders/{id}", "order")]);
    let f = found(&t, "GET", "/v1/orders/42");
    assert_eq!(f.params, vec![("id", "42".to_string())]);
    assert_eq!(f.param("id"), Some("42"));
    assert_eq!(f.param("nope"), None);
    assert_eq!(f.rest, "/");
    let f = found(&t, "GET", "/v1/orders/42/items");
    assert_eq!(f.params, vec![("id", "42".to_string())]);
    assert_eq!(f.rest, "/items");
    assert_eq!(hit(&t, None, "GET", "/v1/orders"), None);
    assert_eq!(hit(&t, None, "GET", "/v1/orders/"), None);
}

#[test]
fn params_keep_normalised_encoding_and_come_in_pattern_order() {
    let t = build(vec![spec("/u/{user}/r/{repo}", "repo")]);
    let f = found(&t, "GET", "/u/a%2Fb/r/x~y/tree");
    assert_eq!(
        f.params,
        vec![("user", "a%2Fb".to_string()), ("repo", "x~y".to_string())]
    );
    assert_eq!(f.rest, "/tree");
}

#[test]
fn rest_is_the_unmatched_suffix() {
    let cases = [
        ("/v1/orders", "/v1/orders/42", "/42"),
        ("/v1/orders", "/v1/orders", "/"),
        ("/v1/orders", "/v1/orders/", "/"),
        ("/v1/orders", "/v1/orders/42/", "/42/"),
        ("/v1/orders/{id}", "/v1/orders/7/a/b", "/a/b"),
        ("=/v1/orders", "/v1/orders", "/"),
        ("/", "/", "/"),
        ("/", "/a/b", "/a/b"),
        ("=/", "/", "/"),
    ];
    for (pattern, path, rest) in cases {
        let t = build(vec![spec(pattern, "x")]);
        assert_eq!(found(&t, "GET", path).rest, rest, "{pattern} on {path}");
    }
}

#[test]
fn deeper_beats_shallower_and_static_beats_param() {
    let t = build(vec![
        spec("/", "root"),
        spec("/a", "a"),
        spec("/a/{x}", "a/x"),
        spec("/a/b", "a/b"),
        spec("/a/b/c", "a/b/c"),
    ]);
    assert_eq!(hit(&t, None, "GET", "/a/b/c/d"), Some("a/b/c"));
    assert_eq!(hit(&t, None, "GET", "/a/b/z"), Some("a/b"));
    assert_eq!(hit(&t, None, "GET", "/a/b"), Some("a/b"));
    assert_eq!(hit(&t, None, "GET", "/a/q"), Some("a/x"));
    assert_eq!(hit(&t, None, "GET", "/a"), Some("a"));
    assert_eq!(hit(&t, None, "GET", "/a/"), Some("a"));
    assert_eq!(hit(&t, None, "GET", "/z"), Some("root"));
}

#[test]
fn backtracking_prefers_the_deeper_param_route() {
    let t = build(vec![spec("/a/{x}/c", "a/x/c"), spec("/a/b", "a/b")]);
    let f = found(&t, "GET", "/a/b/c");
    assert_eq!(*f.value, "a/x/c");
    assert_eq!(f.params, vec![("x", "b".to_string())]);
    assert_eq!(hit(&t, None, "GET", "/a/b/d"), Some("a/b"));
    assert_eq!(hit(&t, None, "GET", "/a/b/c/d"), Some("a/x/c"));
    assert_eq!(hit(&t, None, "GET", "/a/z/c"), Some("a/x/c"));
    assert_eq!(hit(&t, None, "GET", "/a/z/d"), None);
}

#[test]
fn at_equal_depth_the_leftmost_static_wins() {
    let t = build(vec![
        spec("/a/{x}/c", "param-first"),
        spec("/a/b/{y}", "static-first"),
    ]);
    assert_eq!(hit(&t, None, "GET", "/a/b/c"), Some("static-first"));
    assert_eq!(hit(&t, None, "GET", "/a/z/c"), Some("param-first"));
}

#[test]
fn exact_beats_prefix_at_the_same_node() {
    let t = build(vec![spec("/v1/ping", "prefix"), spec("=/v1/ping", "exact")]);
    assert_eq!(hit(&t, None, "GET", "/v1/ping"), Some("exact"));
    assert_eq!(hit(&t, None, "GET", "/v1/ping/"), Some("prefix"));
    assert_eq!(hit(&t, None, "GET", "/v1/ping/x"), Some("prefix"));
}

#[test]
fn exact_route_falls_back_to_a_shallower_prefix() {
    let t = build(vec![spec("=/a/b", "exact"), spec("/a", "prefix")]);
    assert_eq!(hit(&t, None, "GET", "/a/b"), Some("exact"));
    assert_eq!(hit(&t, None, "GET", "/a/b/c"), Some("prefix"));
}

#[test]
fn method_mismatch_falls_back_to_less_specific_routes() {
    let t = build(vec![
        spec("/v1", "v1"),
        spec("/v1/orders", "orders").methods(["GET"]),
    ]);
    assert_eq!(hit(&t, None, "GET", "/v1/orders"), Some("orders"));
    assert_eq!(hit(&t, None, "POST", "/v1/orders"), Some("v1"));
}

#[test]
fn methods_are_upper_cased_and_compared_exactly() {
    let t = build(vec![spec("/a", "a").methods(["get", "Post", "GET"])]);
    assert_eq!(hit(&t, None, "GET", "/a"), Some("a"));
    assert_eq!(hit(&t, None, "POST", "/a"), Some("a"));
    assert_eq!(hit(&t, None, "get", "/a"), None);
}

#[test]
fn method_not_allowed_lists_methods_of_matching_routes() {
    let t = build(vec![
        spec("/v1", "v1").methods(["GET"]),
        spec("/v1/orders", "orders").methods(["POST", "PUT"]),
        spec("/v1/orders", "orders-head").methods(["HEAD"]),
        spec("=/v1/orders/x", "unrelated").methods(["PATCH"]),
        spec("/v2", "v2").methods(["GET"]),
    ]);
    assert_eq!(
        t.find(None, "DELETE", "/v1/orders/1", &no_headers),
        Match::MethodNotAllowed {
            allow: vec!["GET", "HEAD", "POST", "PUT"]
        }
    );
    assert_eq!(
        t.find(None, "DELETE", "/v1/orders/x", &no_headers),
        Match::MethodNotAllowed {
            allow: vec!["GET", "HEAD", "PATCH", "POST", "PUT"]
        }
    );
    assert_eq!(t.find(None, "DELETE", "/v3", &no_headers), Match::NotFound);
    assert_eq!(hit(&t, None, "GET", "/v1/orders"), Some("v1"));
}

#[test]
fn header_mismatch_is_not_found_not_405() {
    let t = build(vec![
        spec("/a", "a").methods(["GET"]).header("X-Env", "beta"),
    ]);
    assert_eq!(t.find(None, "POST", "/a", &no_headers), Match::NotFound);
    let beta = |name: &str| (name == "x-env").then_some("beta");
    assert_eq!(
        t.find(None, "POST", "/a", &beta),
        Match::MethodNotAllowed { allow: vec!["GET"] }
    );
}

#[test]
fn header_conditions_order_routes_and_are_checked() {
    let t = build(vec![
        spec("/a", "plain"),
        spec("/a", "one").header("X-Env", "beta"),
        spec("/a", "two")
            .header("x-env", "beta")
            .header("X-Tier", "gold"),
        spec("/a/b", "deep").header("X-Env", "prod"),
    ]);
    let headers: HashMap<String, String> = [
        ("x-env".to_string(), "beta".to_string()),
        ("x-tier".to_string(), "gold".to_string()),
    ]
    .into();
    // A borrowing closure works with `find`'s signature.
    let lookup = |name: &str| headers.get(name).map(String::as_str);
    let value = |m: Match<'_, &'static str>| match m {
        Match::Found(f) => Some(*f.value),
        _ => None,
    };
    assert_eq!(value(t.find(None, "GET", "/a", &lookup)), Some("two"));
    assert_eq!(value(t.find(None, "GET", "/a/b", &lookup)), Some("two"));
    let only_env = |name: &str| (name == "x-env").then_some("beta");
    assert_eq!(value(t.find(None, "GET", "/a", &only_env)), Some("one"));
    let wrong_case_value = |name: &str| (name == "x-env").then_some("Beta");
    assert_eq!(
        value(t.find(None, "GET", "/a", &wrong_case_value)),
        Some("plain")
    );
    let prod = |name: &str| (name == "x-env").then_some("prod");
    assert_eq!(value(t.find(None, "GET", "/a/b", &prod)), Some("deep"));
}

#[test]
fn header_lookup_receives_lower_case_names() {
    let t = build(vec![spec("/a", "a").header("X-Custom-Header", "1")]);
    let seen = std::cell::RefCell::new(Vec::new());
    let lookup = |name: &str| {
        seen.borrow_mut().push(name.to_string());
        None::<&str>
    };
    assert_eq!(t.find(None, "GET", "/a", &lookup), Match::NotFound);
    assert_eq!(*seen.borrow(), vec!["x-custom-header".to_string()]);
}

#[test]
fn query_conditions_keep_their_case_and_are_validated() {
    let t = build(vec![
        spec("/r", "v1").header("?Version", "1"),
        spec("/r", "v2").header("?Version", "2"),
        spec("/r", "none"),
    ]);
    let seen = std::cell::RefCell::new(Vec::new());
    let lookup = |name: &str| {
        seen.borrow_mut().push(name.to_string());
        (name == "?Version").then_some("2")
    };
    assert_eq!(
        match t.find(None, "GET", "/r", &lookup) {
            Match::Found(f) => Some(*f.value),
            _ => None,
        },
        Some("v2")
    );
    assert!(seen.borrow().iter().all(|n| n == "?Version"));
    assert_eq!(hit(&t, None, "GET", "/r"), Some("none"));
    for bad in ["?", "?a&b", "?a=b", "?a b"] {
        let err = try_build(vec![spec("/r", "x").header(bad, "1")]).unwrap_err();
        assert!(
            err.to_string().contains("not a valid query parameter name"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn absent_conditions_hold_only_without_the_header() {
    let t = build(vec![
        spec("/r", "any-v1").header("v", "1"),
        spec("=/r/x", "default").header("!v", ""),
    ]);
    let v1 = |name: &str| (name == "v").then_some("1");
    let found = |m: Match<'_, &'static str>| match m {
        Match::Found(f) => Some(*f.value),
        _ => None,
    };
    // Naming a version skips the more specific default route.
    assert_eq!(found(t.find(None, "GET", "/r/x", &v1)), Some("any-v1"));
    assert_eq!(hit(&t, None, "GET", "/r/x"), Some("default"));
}

#[test]
fn host_tables_exact_then_wildcard_then_any() {
    let t = build(vec![
        spec("/", "any"),
        spec("/", "exact").hosts(["api.example.com"]),
        spec("/", "wild").hosts(["*.example.com"]),
        spec("/", "wild-deep").hosts(["*.eu.example.com"]),
    ]);
    let cases = [
        (Some("api.example.com"), "exact"),
        (Some("API.Example.COM:8443"), "exact"),
        (Some("api.example.com."), "exact"),
        (Some("www.example.com"), "wild"),
        (Some("a.b.example.com"), "wild"),
        (Some("x.eu.example.com"), "wild-deep"),
        (Some("eu.example.com"), "wild"),
        (Some("example.com"), "any"),
        (Some("other.org"), "any"),
        (Some(".example.com"), "any"),
        (Some(""), "any"),
        (None, "any"),
    ];
    for (host, expected) in cases {
        assert_eq!(hit(&t, host, "GET", "/x"), Some(expected), "{host:?}");
    }
}

#[test]
fn host_tables_fall_through_when_path_does_not_match() {
    let t = build(vec![
        spec("/admin", "host-admin").hosts(["api.example.com"]),
        spec("/v1", "wild-v1")
            .hosts(["*.example.com"])
            .methods(["GET"]),
        spec("/", "any"),
    ]);
    assert_eq!(
        hit(&t, Some("api.example.com"), "GET", "/admin/x"),
        Some("host-admin")
    );
    assert_eq!(
        hit(&t, Some("api.example.com"), "GET", "/v1"),
        Some("wild-v1")
    );
    // A less specific path in a later table wins over nothing.
    assert_eq!(
        hit(&t, Some("api.example.com"), "GET", "/other"),
        Some("any")
    );
    // Method mismatch in one table, full match in a later table.
    assert_eq!(hit(&t, Some("api.example.com"), "POST", "/v1"), Some("any"));
    // Host-restricted routes never match without that host.
    assert_eq!(hit(&t, None, "GET", "/admin"), Some("any"));
}

#[test]
fn first_table_with_a_full_match_wins_over_more_specific_paths() {
    let t = build(vec![
        spec("/", "host-root").hosts(["api.example.com"]),
        spec("/v1/orders/{id}", "any-deep"),
    ]);
    assert_eq!(
        hit(&t, Some("api.example.com"), "GET", "/v1/orders/1"),
        Some("host-root")
    );
    assert_eq!(
        hit(&t, Some("other"), "GET", "/v1/orders/1"),
        Some("any-deep")
    );
}

#[test]
fn method_not_allowed_across_host_tables() {
    let t = build(vec![
        spec("/a", "host").hosts(["h.test"]).methods(["GET"]),
        spec("/a", "any").methods(["PUT"]),
    ]);
    assert_eq!(
        t.find(Some("h.test"), "POST", "/a", &no_headers),
        Match::MethodNotAllowed {
            allow: vec!["GET", "PUT"]
        }
    );
    assert_eq!(hit(&t, Some("h.test"), "PUT", "/a"), Some("any"));
    assert_eq!(
        t.find(Some("other"), "POST", "/a", &no_headers),
        Match::MethodNotAllowed { allow: vec!["PUT"] }
    );
}

#[test]
fn ipv6_hosts() {
    let t = build(vec![spec("/", "v6").hosts(["[::1]"])]);
    assert_eq!(hit(&t, Some("[::1]:8080"), "GET", "/"), Some("v6"));
    assert_eq!(hit(&t, Some("[::2]"), "GET", "/"), None);
}

#[test]
fn odd_paths_do_not_match_or_panic() {
    let t = build(vec![spec("/", "root"), spec("/a/{x}", "ax")]);
    assert_eq!(hit(&t, None, "GET", "relative"), None);
    assert_eq!(hit(&t, None, "GET", "*"), None);
    assert_eq!(hit(&t, None, "GET", ""), Some("root"));
    assert_eq!(hit(&t, None, "GET", "/a//b"), Some("root"));
    assert_eq!(hit(&t, None, "GET", "/a/é"), Some("ax"));
    let empty = build(vec![]);
    assert!(empty.is_empty());
    assert_eq!(empty.len(), 0);
    assert_eq!(hit(&empty, Some("x"), "GET", "/"), None);
    assert_eq!(t.len(), 2);
}

fn conflict_of(specs: Vec<RouteSpec<&'static str>>) -> (usize, usize, ConflictReason, String) {
    match try_build(specs) {
        Err(e @ BuildError::Conflict { .. }) => {
            let message = e.to_string();
            let (index, other) = (e.index(), e.other_index().unwrap_or(usize::MAX));
            let BuildError::Conflict { reason, .. } = e else {
                unreachable!()
            };
            (index, other, *reason, message)
        }
        Err(e) => panic!("expected a conflict, got {e}"),
        Ok(_) => panic!("expected a conflict, build succeeded"),
    }
}

#[test]
fn duplicate_routes_conflict() {
    let (index, other, reason, message) =
        conflict_of(vec![spec("/a", "0"), spec("/b", "1"), spec("/a", "2")]);
    assert_eq!((index, other), (2, 0));
    assert_eq!(
        reason,
        ConflictReason::Duplicate {
            kind: "prefix",
            scope: "any host".into(),
            methods: "all methods".into(),
        }
    );
    assert!(
        message.starts_with("route #2 `/a` conflicts with route #0 `/a`"),
        "{message}"
    );
}

#[test]
fn overlapping_methods_conflict() {
    let (_, _, reason, _) = conflict_of(vec![
        spec("=/a", "0").methods(["GET", "POST"]),
        spec("=/a", "1").methods(["PUT", "POST"]),
    ]);
    assert!(
        matches!(&reason, ConflictReason::Duplicate { kind: "exact", methods, .. } if methods == "POST")
    );
    let (_, _, reason, _) = conflict_of(vec![spec("/a", "0").methods(["GET"]), spec("/a", "1")]);
    assert!(matches!(&reason, ConflictReason::Duplicate { methods, .. } if methods == "GET"));
}

#[test]
fn overlapping_hosts_conflict() {
    let (index, other, reason, _) = conflict_of(vec![
        spec("/a", "0").hosts(["a.test", "B.test"]),
        spec("/a", "1").hosts(["b.test."]),
    ]);
    assert_eq!((index, other), (1, 0));
    assert!(matches!(&reason, ConflictReason::Duplicate { scope, .. } if scope == "host `b.test`"));
    let (_, _, reason, _) = conflict_of(vec![
        spec("/a", "0").hosts(["*.x.test"]),
        spec("/a", "1").hosts(["*.X.test"]),
    ]);
    assert!(
        matches!(&reason, ConflictReason::Duplicate { scope, .. } if scope == "host `*.x.test`")
    );
}

#[test]
fn param_name_mismatch_conflicts() {
    let (index, other, reason, message) = conflict_of(vec![
        spec("/z", "0"),
        spec("/a/{name}", "1"),
        spec("/b", "2"),
        spec("/a/{id}/x", "3").methods(["POST"]),
    ]);
    assert_eq!((index, other), (3, 1));
    assert_eq!(
        reason,
        ConflictReason::ParamName {
            position: 2,
            name: "id".into(),
            other_name: "name".into(),
            scope: "any host".into(),
        }
    );
    assert!(
        message.starts_with("route #3 `/a/{id}/x` conflicts with route #1 `/a/{name}`"),
        "{message}"
    );
    assert!(message.contains("`{id}` and `{name}`"), "{message}");
}

#[test]
fn non_conflicting_routes_build() {
    build(vec![
        spec("/a", "prefix"),
        spec("=/a", "exact"),
        spec("/a", "get").methods(["GET"]).header("x", "1"),
        spec("/a", "post").methods(["POST"]).header("x", "1"),
        spec("/a", "hdr").header("y", "1"),
        spec("/a", "host").hosts(["h.test"]),
        spec("/a", "wild").hosts(["*.h.test"]),
        spec("/a/{id}", "id"),
        spec("/a/{id}/b", "id-b"),
        spec("/a/{name}", "other-host").hosts(["h.test"]),
        spec("/a/b", "static"),
    ]);
}

#[test]
fn invalid_specs_report_their_index() {
    let mut builder = RouteTableBuilder::new();
    assert!(builder.add(spec("/ok", "0")).is_ok());
    let err = builder.add(spec("/a{b}", "1")).err();
    assert_eq!(
        err,
        Some(BuildError::Pattern {
            index: 1,
            pattern: "/a{b}".into(),
            source: PatternError::MixedSegment {
                segment: "a{b}".into()
            },
        })
    );
    let err = builder.add(spec("/a", "2").methods(["GE T"])).err();
    assert!(
        matches!(err, Some(BuildError::InvalidMethod { index: 2, ref method, .. }) if method == "GE T")
    );
    let err = builder.add(spec("/a", "3").methods([""])).err();
    assert_eq!(err.map(|e| e.index()), Some(3));
    let err = builder.add(spec("/a", "4").hosts(["a.*.test"])).err();
    assert!(matches!(
        err,
        Some(BuildError::InvalidHost { index: 4, .. })
    ));
    let err = builder.add(spec("/a", "5").header("bad name", "v")).err();
    assert!(matches!(
        err,
        Some(BuildError::InvalidHeader { index: 5, .. })
    ));
    let err = builder.add(spec("/a", "6").header("x", "a\nb")).err();
    assert!(matches!(
        err,
        Some(BuildError::InvalidHeader { index: 6, .. })
    ));
    let err = builder
        .add(spec("/a", "7").header("X", "1").header("x", "1"))
        .err();
    assert!(matches!(
        err,
        Some(BuildError::InvalidHeader { index: 7, .. })
    ));
    // Indices keep counting after failures.
    assert!(builder.add(spec("/ok", "8")).is_ok());
    let err = builder.build().err();
    assert_eq!(err.as_ref().map(BuildError::index), Some(8));
    assert_eq!(err.as_ref().and_then(BuildError::other_index), Some(0));
}

#[test]
fn build_error_messages() {
    let err = try_build(vec![spec("/a/{}", "x")])
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("route #0 `/a/{}`: invalid pattern: parameter name is empty: `{}`")
    );
    let err = try_build(vec![spec("/a", "x").hosts(["a.test:80"])])
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some(
            "route #0 `/a`: invalid host `a.test:80`: \
             host must not contain a port (the request port is ignored)"
        )
    );
}

#[test]
fn pattern_and_path_canonicalisation_agree() {
    let t = build(vec![spec("/%7Euser/a%2fb", "x")]);
    let path = crate::normalize_path("/%7euser/a%2Fb/c").unwrap_or_default();
    assert_eq!(hit(&t, None, "GET", &path), Some("x"));
    assert_eq!(hit(&t, None, "GET", "/~user/a/b"), None);
}
