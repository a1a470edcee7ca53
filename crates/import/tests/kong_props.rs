//! Property tests of the Kong importer and exporter: whatever a decK file holds, the import
//! never panics and answers an error naming the problem or a configuration that passes
//! validation (checked inside the importer); and that configuration, exported to Kong,
//! imports back to itself wherever the export named nothing unsupported.

use proptest::prelude::*;
use tollgate_import::kong::{export, import, to_yaml};

/// Route paths: plain and `~` regex, biased towards what the mapping looks at.
fn path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        "[a-z0-9]{1,4}",
        Just("(?<id>[^/]+)".to_string()),
        Just("([^/]+)".to_string()),
        Just("(\\d+)".to_string()),
        Just("v1\\.0".to_string()),
        Just("{x}".to_string()),
        Just(".*".to_string()),
        Just("(a|b)".to_string()),
        Just("".to_string()),
        "[\\PC]{1,2}",
    ];
    (
        prop_oneof![Just(""), Just("~"), Just("~^")],
        proptest::collection::vec(segment, 0..4),
        prop_oneof![Just(""), Just("$"), Just("/"), Just("/?$")],
    )
        .prop_map(|(head, segs, tail)| format!("{head}/{}{tail}", segs.join("/")))
}

fn plugin() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{ name: key-auth, config: { key_names: [apikey], hide_credentials: true } }"),
        Just("{ name: key-auth, config: { key_names: [a, b], key_in_query: false } }"),
        Just("{ name: basic-auth }"),
        Just("{ name: acl, config: { allow: [g1] } }"),
        Just("{ name: acl, config: {} }"),
        Just("{ name: rate-limiting, config: { minute: 5, day: 100 } }"),
        Just("{ name: rate-limiting, config: { second: 1.5, limit_by: header } }"),
        Just("{ name: rate-limiting, config: { hour: 7, limit_by: ip, policy: redis } }"),
        Just("{ name: cors, config: { origins: ['https://a.example', '*.x'], credentials: true } }"),
        Just("{ name: cors }"),
        Just("{ name: ip-restriction, config: { allow: [10.0.0.0/8, nope] } }"),
        Just("{ name: request-transformer, config: { add: { headers: ['x-a:1'] }, replace: { headers: ['x-a:1'], uri: '/u/$(uri_captures.id)' } } }"),
        Just("{ name: request-transformer, config: { append: { body: ['a:1'] }, add: { querystring: ['q:$(headers.x)'] } } }"),
        Just("{ name: request-size-limiting, config: { allowed_payload_size: 2 } }"),
        Just("{ name: request-termination, config: { status_code: 403 } }"),
        Just("{ name: jwt }"),
        Just("{ name: prometheus, enabled: false }"),
        Just("{ name: key-auth, consumer: c0 }"),
    ]
    .prop_map(str::to_string)
}

fn route() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(path(), 0..3),
        prop_oneof![Just("[]"), Just("[GET]"), Just("[get, POST]")],
        prop_oneof![
            Just("[]"),
            Just("[api.example.com]"),
            Just("['*.example.com']"),
            Just("[a.example.com, b.example.com]"),
            Just("['x.example.com:8000', 'y.*']"),
        ],
        prop_oneof![Just("{}"), Just("{ x-team: [a] }"), Just("{ x-team: [a, b] }")],
        any::<bool>(),
        any::<bool>(),
        proptest::collection::vec(plugin(), 0..3),
        prop_oneof![Just("[http, https]"), Just("[https]"), Just("[grpc]")],
    )
        .prop_map(|(paths, methods, hosts, headers, strip, preserve, plugins, protocols)| {
            let quote = |t: &String| serde_json::to_string(t).unwrap_or_default();
            let paths: Vec<String> = paths.iter().map(quote).collect();
            format!(
                "{{ paths: [{}], methods: {methods}, hosts: {hosts}, headers: {headers}, strip_path: {strip}, preserve_host: {preserve}, protocols: {protocols}, plugins: [{}] }}",
                paths.join(", "),
                plugins.join(", ")
            )
        })
}

fn document() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("\"3.0\""), Just("\"1.1\""), Just("2.1")],
        proptest::collection::vec(
            (
                prop_oneof![
                    Just("url: http://s.example"),
                    Just("url: https://s.example:8443/base"),
                    Just("host: pool"),
                    Just("protocol: grpc, host: g"),
                    Just("host: 'bad host'"),
                ],
                proptest::collection::vec(route(), 0..3),
                proptest::collection::vec(plugin(), 0..2),
            ),
            0..3,
        ),
        proptest::collection::vec(plugin(), 0..2),
        prop_oneof![
            Just("[{ username: c0, keyauth_credentials: [{ key: a-key-of-sixteen-chars }], jwt_secrets: [{ key: i0, secret: s0 }] }]"),
            Just("[{ username: 'Weird Name', basicauth_credentials: [{ username: u, password: short }] }, { custom_id: c1, acls: [{ group: g1 }] }]"),
            Just("[]"),
        ],
    )
        .prop_map(|(version, services, global, consumers)| {
            let mut doc = format!(
                "_format_version: {version}\nupstreams: [{{ name: pool, targets: [{{ target: '10.0.0.1:80', weight: 5 }}] }}]\nservices:\n"
            );
            for (i, (target, routes, plugins)) in services.iter().enumerate() {
                doc.push_str(&format!(
                    "  - {{ name: svc{i}, {target}, routes: [{}], plugins: [{}] }}\n",
                    routes.join(", "),
                    plugins.join(", ")
                ));
            }
            doc.push_str(&format!("plugins: [{}]\nconsumers: {consumers}\n", global.join(", ")));
            doc
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn generated_files_import_and_go_back_through_kong(doc in document()) {
        let Ok(first) = import(&doc) else { return Ok(()) };
        let one: tollgate_model::Document = serde_json::from_value(first.document.clone()).unwrap();
        prop_assert!(tollgate_model::validate(&one).is_empty());
        let (kong, report) = export(&one).unwrap();
        let again = import(&to_yaml(&kong));
        prop_assert!(again.is_ok(), "{doc}\n{:?}", again.err());
        if report.unsupported.is_empty() {
            let two: tollgate_model::Document =
                serde_json::from_value(again.unwrap().document).unwrap();
            prop_assert_eq!(one, two, "{}", doc);
        }
    }

    #[test]
    fn arbitrary_text_is_an_error_or_a_configuration(text in "[\\PC\n]{0,200}") {
        let _ = import(&text);
        let _ = import(&format!("_format_version: \"3.0\"\n{text}"));
    }
}
