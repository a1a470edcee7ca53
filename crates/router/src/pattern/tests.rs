use super::*;

fn st(s: &str) -> Segment {
    Segment::Static(s.into())
}

fn pm(s: &str) -> Segment {
    Segment::Param(s.into())
}

#[test]
fn parses_valid_patterns() {
    let cases: Vec<(&str, bool, Vec<Segment>)> = vec![
        ("/", false, vec![]),
        ("=/", true, vec![]),
        ("/v1/orders", false, vec![st("v1"), st("orders")]),
        ("=/v1/ping", true, vec![st("v1"), st("ping")]),
        (
            "/v1/orders/{id}",
            false,
            vec![st("v1"), st("orders"), pm("id")],
        ),
        ("/{_a}/{B9}/x", false, vec![pm("_a"), pm("B9"), st("x")]),
        // canonicalised like request paths
        ("/%7euser/a%2fb", false, vec![st("~user"), st("a%2Fb")]),
        ("/a.b/..c/...", false, vec![st("a.b"), st("..c"), st("...")]),
        (
            "/a=b;c/@:!$&'()*+,",
            false,
            vec![st("a=b;c"), st("@:!$&'()*+,")],
        ),
        ("/==x", false, vec![st("==x")]),
    ];
    for (input, exact, segments) in cases {
        assert_eq!(
            parse(input),
            Ok(Pattern { exact, segments }),
            "parse({input:?})"
        );
    }
}

#[test]
fn rejects_invalid_patterns() {
    use PatternError as E;
    let cases: Vec<(&str, PatternError)> = vec![
        ("", E::NotAbsolute),
        ("=", E::NotAbsolute),
        ("v1/orders", E::NotAbsolute),
        ("==/a", E::NotAbsolute),
        ("//", E::EmptySegment),
        ("/a//b", E::EmptySegment),
        ("/a/", E::EmptySegment),
        ("=/a/", E::EmptySegment),
        ("/a/./b", E::DotSegment),
        ("/a/..", E::DotSegment),
        ("/a/%2e%2E", E::DotSegment),
        ("/a/{}", E::EmptyParamName),
        ("/a/{1x}", E::InvalidParamName { name: "1x".into() }),
        ("/a/{a-b}", E::InvalidParamName { name: "a-b".into() }),
        (
            "/a/{a{b}}",
            E::InvalidParamName {
                name: "a{b}".into(),
            },
        ),
        ("/a/{é}", E::InvalidParamName { name: "é".into() }),
        (
            "/a{b}",
            E::MixedSegment {
                segment: "a{b}".into(),
            },
        ),
        (
            "/{b}x",
            E::MixedSegment {
                segment: "{b}x".into(),
            },
        ),
        (
            "/{a",
            E::UnbalancedBrace {
                segment: "{a".into(),
            },
        ),
        (
            "/a}",
            E::UnbalancedBrace {
                segment: "a}".into(),
            },
        ),
        (
            "/}a{",
            E::UnbalancedBrace {
                segment: "}a{".into(),
            },
        ),
        ("/{id}/x/{id}", E::DuplicateParam { name: "id".into() }),
        ("/a b", E::InvalidChar { ch: ' ' }),
        ("/a?b", E::InvalidChar { ch: '?' }),
        ("/a#b", E::InvalidChar { ch: '#' }),
        ("/é", E::InvalidChar { ch: 'é' }),
        ("/a\nb", E::InvalidChar { ch: '\n' }),
        ("/a%zz", E::BadEscape),
        ("/a%4", E::BadEscape),
        ("/a%00", E::Nul),
    ];
    for (input, expected) in cases {
        assert_eq!(parse(input), Err(expected), "parse({input:?})");
    }
}

#[test]
fn validate_pattern_is_parse() {
    assert_eq!(validate_pattern("/a/{id}"), Ok(()));
    assert_eq!(validate_pattern("a"), Err(PatternError::NotAbsolute));
}

#[test]
fn counts_params() {
    assert_eq!(parse("/a/{x}/b/{y}").map(|p| p.param_count()), Ok(2));
    assert_eq!(parse("/").map(|p| p.param_count()), Ok(0));
}

#[test]
fn error_messages() {
    assert_eq!(
        PatternError::EmptyParamName.to_string(),
        "parameter name is empty: `{}`"
    );
    assert_eq!(
        PatternError::DuplicateParam { name: "id".into() }.to_string(),
        "parameter `{id}` appears more than once in the pattern"
    );
    assert!(
        PatternError::MixedSegment {
            segment: "a{b}".into()
        }
        .to_string()
        .contains("`a{b}`")
    );
}
