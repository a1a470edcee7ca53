//! The path normaliser and the route table: never panic; normalising is idempotent; a
//! normalised path has no dot segment, no empty segment and no hidden traversal.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tollgate_router::{Match, RouteSpec, RouteTable, RouteTableBuilder, normalize_path};

fn table() -> &'static RouteTable<usize> {
    static TABLE: OnceLock<RouteTable<usize>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut b = RouteTableBuilder::new();
        for (i, p) in ["/public", "/admin", "=/ping", "/users/{id}/orders", "/files/{id}"]
            .iter()
            .enumerate()
        {
            b.add(RouteSpec::new(*p, i)).expect("valid pattern");
        }
        b.build().expect("no conflicts")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(path) = normalize_path(raw) else {
        return;
    };
    let again = normalize_path(&path).expect("a normalised path normalises");
    assert_eq!(again, path, "normalising is idempotent");
    let inner = path.trim_end_matches('/');
    for seg in inner.split('/').skip(1) {
        assert!(seg != "." && seg != "..", "dot segment left in {path}");
        assert!(!seg.is_empty(), "empty segment left in {path}");
    }
    match table().find(Some("example.com"), "GET", &path, &|_| None) {
        Match::Found(found) => {
            // The protected prefix is only ever matched by a path that starts with it.
            if *found.value == 1 {
                assert!(path.starts_with("/admin"), "{path} matched /admin");
            }
        }
        Match::MethodNotAllowed { .. } | Match::NotFound => {}
    }
});
