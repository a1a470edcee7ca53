//! Property tests: the OpenAPI importer never panics, whatever the document holds, and
//! whatever it answers is either an error naming the problem or a configuration that
//! passes validation (checked inside the importer).

use proptest::prelude::*;
use tollgate_import::openapi::{Options, import};

/// Path templates biased towards braces, odd characters and slashes.
fn templateish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("{id}".to_string()),
        Just("{pet-id}".to_string()),
        Just("{1}".to_string()),
        Just("%7B".to_string()),
        Just("..".to_string()),
        Just("*".to_string()),
        Just(":".to_string()),
        "[a-z0-9_-]{1,4}",
        "[\\PC]{1,2}",
    ];
    proptest::collection::vec(piece, 0..8).prop_map(|v| v.concat())
}

/// A document around generated paths, servers and security schemes.
fn document() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(templateish(), 0..5),
        prop_oneof![
            Just("https://api.example.com/v1".to_string()),
            Just("/relative".to_string()),
            Just("{scheme}://x.example".to_string()),
            Just("http://[::1]:8080/".to_string()),
            Just("https://".to_string()),
            "[\\PC]{0,12}",
        ],
        prop_oneof![
            Just("{ type: apiKey, in: header, name: X-Key }"),
            Just("{ type: apiKey, in: cookie, name: c }"),
            Just("{ type: http, scheme: basic }"),
            Just("{ type: http, scheme: bearer }"),
            Just("{ type: oauth2 }"),
            Just("{ type: mutualTLS }"),
            Just("{ type: 7 }"),
            Just("[]"),
        ],
        prop_oneof![Just("[{ s: [] }]"), Just("[]"), Just("[{}]"), Just("{}"), Just("[{ s: [], t: [] }]")],
    )
        .prop_map(|(paths, server, scheme, security)| {
            // JSON strings are YAML double-quoted scalars.
            let quote = |t: &str| serde_json::to_string(t).unwrap_or_default();
            let server = quote(&server);
            let mut doc = format!(
                "openapi: 3.0.3\ninfo: {{ title: \"T\", version: \"1\" }}\nservers: [{{ url: {server} }}]\ncomponents: {{ securitySchemes: {{ s: {scheme} }} }}\nsecurity: {security}\npaths:\n"
            );
            for p in paths {
                doc.push_str(&format!(
                    "  {}: {{ get: {{}}, post: {{ security: [] }} }}\n",
                    quote(&p)
                ));
            }
            doc
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn importing_never_panics(doc in document(), upstream in proptest::option::of(Just("http://127.0.0.1:9".to_string()))) {
        // The documents are well-formed YAML, so every case reaches the mapping itself.
        if let Err(e) = import(&doc, &Options { upstream, name: None }) {
            prop_assert!(!e.0.starts_with("not YAML"), "{e}\n{doc}");
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "[\\PC\\n]{0,200}") {
        let _ = import(&text, &Options::default());
    }
}
