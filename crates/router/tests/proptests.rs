//! Property tests: normalisation is total, idempotent and canonical, and
//! route lookup never panics.

use proptest::prelude::*;
use tollgate_router::{Match, RouteSpec, RouteTable, RouteTableBuilder, normalize_path};

/// Path-like strings biased towards the interesting cases.
fn pathish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/".to_string()),
        Just("//".to_string()),
        Just(".".to_string()),
        Just("..".to_string()),
        Just("/./".to_string()),
        Just("/../".to_string()),
        Just("%2e".to_string()),
        Just("%2E%2e".to_string()),
        Just("%2f".to_string()),
        Just("%".to_string()),
        Just("%4".to_string()),
        Just("%00".to_string()),
        "%[0-9a-fA-F]{2}",
        "[a-z0-9~_-]{1,4}",
        "[\\PC]{1,2}",
        any::<char>().prop_map(String::from),
    ];
    (any::<bool>(), prop::collection::vec(piece, 0..16)).prop_map(|(slash, pieces)| {
        let mut s = if slash {
            "/".to_string()
        } else {
            String::new()
        };
        s.extend(pieces);
        s
    })
}

fn any_path() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        pathish(),
        pathish().prop_map(|p| format!("/{p}"))
    ]
}

fn table() -> RouteTable<usize> {
    let specs = [
        RouteSpec::new("/", 0),
        RouteSpec::new("=/", 1),
        RouteSpec::new("/v1/orders", 2).methods(["GET"]),
        RouteSpec::new("/v1/orders/{id}", 3).methods(["GET", "PUT"]),
        RouteSpec::new("=/v1/orders/{id}/items", 4),
        RouteSpec::new("/a/{x}/c", 5),
        RouteSpec::new("/a/b", 6).header("X-Env", "beta"),
        RouteSpec::new("/%2E%2Ex/a%2fb", 7),
        RouteSpec::new("/", 8).hosts(["api.example.com", "*.example.com"]),
        RouteSpec::new("/{p}/{q}", 9)
            .hosts(["*.b.example.com"])
            .methods(["POST"]),
    ];
    let mut builder = RouteTableBuilder::new();
    for spec in specs {
        if let Err(e) = builder.add(spec) {
            panic!("{e}");
        }
    }
    builder.build().unwrap_or_else(|e| panic!("{e}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn normalize_never_panics(raw in any::<String>()) {
        let _ = normalize_path(&raw);
    }

    #[test]
    fn normalize_is_idempotent_and_canonical(raw in any_path()) {
        if let Ok(once) = normalize_path(&raw) {
            let twice = normalize_path(&once);
            prop_assert_eq!(twice.as_deref(), Ok(&*once));
            prop_assert!(once.starts_with('/'));
            prop_assert!(!once.contains("//"), "{:?} -> {:?}", raw, once);
            prop_assert!(!once.contains("/./"), "{:?} -> {:?}", raw, once);
            prop_assert!(!once.contains("/../"), "{:?} -> {:?}", raw, once);
            prop_assert!(!once.ends_with("/.."), "{:?} -> {:?}", raw, once);
            prop_assert!(!once.ends_with("/."), "{:?} -> {:?}", raw, once);
            // Only unreserved characters are decoded, so the escapes that
            // remain are exactly those of reserved/other bytes, upper-cased.
            for (i, _) in once.match_indices('%') {
                let hex = once.get(i + 1..i + 3).unwrap_or("");
                prop_assert!(
                    hex.len() == 2
                        && hex.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)),
                    "{:?} -> {:?}", raw, once
                );
            }
        }
    }

    #[test]
    fn find_never_panics(
        path in any_path(),
        host in prop::option::of(prop_oneof![
            any::<String>(),
            "[a-zA-Z.]{0,12}(example\\.com)?(:[0-9]{0,5})?",
        ]),
        method in prop_oneof![Just("GET".to_string()), Just("POST".to_string()), any::<String>()],
        env in prop::option::of(prop_oneof![Just("beta".to_string()), any::<String>()]),
    ) {
        let table = table();
        let header = |name: &str| if name == "x-env" { env.as_deref() } else { None };
        let result = table.find(host.as_deref(), &method, &path, &header);
        if let Match::Found(found) = &result {
            prop_assert!(found.rest.starts_with('/'));
        }
        if let Ok(normal) = normalize_path(&path) {
            let result = table.find(host.as_deref(), &method, &normal, &header);
            match result {
                Match::Found(found) => {
                    prop_assert!(found.rest.starts_with('/'));
                    prop_assert!(normal.ends_with(&found.rest) || found.rest == "/");
                    for (_, value) in &found.params {
                        prop_assert!(!value.is_empty() && !value.contains('/'));
                    }
                }
                Match::MethodNotAllowed { allow } => {
                    prop_assert!(!allow.is_empty());
                    prop_assert!(!allow.contains(&method.as_str()));
                }
                Match::NotFound => {}
            }
        }
    }
}
