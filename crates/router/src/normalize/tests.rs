use std::borrow::Cow;

use proptest::prelude::*;

use super::*;

#[test]
fn normalisation_table() {
    let cases: &[(&str, &str)] = &[
        ("/", "/"),
        ("/a", "/a"),
        ("/a/b/", "/a/b/"),
        ("/v1/orders/42", "/v1/orders/42"),
        // unreserved escapes are decoded
        ("/%41%62%63", "/Abc"),
        ("/%7E%7euser", "/~~user"),
        ("/a%2Db%5Fc%2e", "/a-b_c."),
        ("/%30%39", "/09"),
        // reserved / other escapes stay encoded, hex upper-cased
        ("/a%2fb", "/a%2Fb"),
        ("/a%2Fb", "/a%2Fb"),
        ("/%3a%40%25%20", "/%3A%40%25%20"),
        ("/%c3%a9", "/%C3%A9"),
        ("/%7f%1f", "/%7F%1F"),
        // slash runs collapse
        ("//a///b", "/a/b"),
        ("//", "/"),
        ("///", "/"),
        ("/a//", "/a/"),
        // dot segments
        ("/a/./b", "/a/b"),
        ("/a/../b", "/b"),
        ("/../a", "/a"),
        ("/../../a/../../b", "/b"),
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("/a/..", "/"),
        ("/..", "/"),
        ("/.", "/"),
        ("/./", "/"),
        ("/a/%2e%2e/b", "/b"),
        ("/a/%2E/b", "/a/b"),
        ("/a/.%2e/b", "/b"),
        ("/a//../b", "/b"),
        ("/a/b/c/./../../g", "/a/g"),
        // dots that are not whole segments are ordinary
        ("/a/.../b", "/a/.../b"),
        ("/a/.b/c.", "/a/.b/c."),
        ("/a/..b", "/a/..b"),
        // other characters pass through
        ("/é/ü", "/é/ü"),
        ("/a b", "/a b"),
        ("/a;b=c/d:e@f", "/a;b=c/d:e@f"),
    ];
    for (input, expected) in cases {
        assert_eq!(
            normalize_path(input).as_deref(),
            Ok(*expected),
            "normalize_path({input:?})"
        );
    }
}

#[test]
fn normalisation_errors() {
    let cases: &[(&str, PathError)] = &[
        ("", PathError::Empty),
        ("a/b", PathError::NotAbsolute),
        ("*", PathError::NotAbsolute),
        ("%2Fa", PathError::NotAbsolute),
        ("/a%", PathError::BadEscape { offset: 2 }),
        ("/a%4", PathError::BadEscape { offset: 2 }),
        ("/a%zz", PathError::BadEscape { offset: 2 }),
        ("/a/%4g", PathError::BadEscape { offset: 3 }),
        ("/a/%é", PathError::BadEscape { offset: 3 }),
        ("/%00", PathError::Nul { offset: 1 }),
        ("/a/b%00c", PathError::Nul { offset: 4 }),
        (
            "/a\nb",
            PathError::ControlChar {
                offset: 2,
                byte: b'\n',
            },
        ),
        (
            "/\u{7f}",
            PathError::ControlChar {
                offset: 1,
                byte: 0x7f,
            },
        ),
        ("/a/\0", PathError::ControlChar { offset: 3, byte: 0 }),
        // errors are reported even inside segments later removed
        ("/a/%zz/..", PathError::BadEscape { offset: 3 }),
        (
            "/a/\t/../b",
            PathError::ControlChar {
                offset: 3,
                byte: b'\t',
            },
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(
            normalize_path(input),
            Err(*expected),
            "normalize_path({input:?})"
        );
    }
}

#[test]
fn error_messages_are_descriptive() {
    assert_eq!(PathError::Empty.to_string(), "request path is empty");
    assert_eq!(
        PathError::NotAbsolute.to_string(),
        "request path must start with '/'"
    );
    assert!(
        PathError::BadEscape { offset: 4 }
            .to_string()
            .contains("byte 4")
    );
    assert!(PathError::Nul { offset: 1 }.to_string().contains("%00"));
    assert!(
        PathError::ControlChar {
            offset: 2,
            byte: 10
        }
        .to_string()
        .contains("0x0A")
    );
}

#[test]
fn canonical_paths_are_borrowed() {
    for p in ["/", "/a", "/a/b/", "/v1/orders/42/items", "/a.b/..c/.d"] {
        assert!(
            matches!(normalize_path(p), Ok(Cow::Borrowed(s)) if s == p),
            "{p:?} should take the fast path"
        );
    }
    for p in ["//", "/a/./b", "/a/%41", "/a/..", "/."] {
        assert!(
            matches!(normalize_path(p), Ok(Cow::Owned(_))),
            "{p:?} should take the slow path"
        );
    }
}

proptest! {
    /// The fast-path predicate agrees with the slow path.
    #[test]
    fn fast_path_agrees_with_slow_path(tail in "[a-z./%0-9A-F]{0,24}") {
        let raw = format!("/{tail}");
        if is_canonical(raw.as_bytes()) {
            prop_assert_eq!(normalize_slow(&raw), Ok(raw.clone()));
        }
    }
}

#[test]
fn dot_segments_hidden_behind_encoded_separators_are_refused() {
    for raw in [
        "/public/..%2fadmin",
        "/public/%2e%2e%2fadmin",
        "/a/%2F..%2Fb",
        "/a/.%5c",
        "/a/..\\b",
        "/public/..;/admin",
        "/a/.;x/b",
    ] {
        assert_eq!(
            normalize_path(raw),
            Err(PathError::EncodedTraversal),
            "{raw}"
        );
    }
    // Encoded slashes alone stay, encoded.
    assert_eq!(normalize_path("/a%2fb").unwrap(), "/a%2Fb");
    assert_eq!(normalize_path("/a%2f...").unwrap(), "/a%2F...");
    assert_eq!(normalize_path("/a;v=1/b").unwrap(), "/a;v=1/b");
}
