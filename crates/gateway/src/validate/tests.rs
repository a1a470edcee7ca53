use super::*;

const PETS: &str = r##"
openapi: 3.0.3
info: { title: Pets, version: "1" }
servers: [{ url: "https://api.example.com/v1" }]
paths:
  /pets:
    get:
      parameters:
        - { name: limit, in: query, schema: { type: integer, minimum: 1, maximum: 100 } }
        - { name: tags, in: query, schema: { type: array, items: { type: string, enum: [cat, dog] } } }
        - { name: x-tenant, in: header, required: true, schema: { type: string, format: uuid } }
      responses: { "200": { description: ok } }
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema: { $ref: "#/components/schemas/NewPet" }
      responses: { 201: { description: made } }
  /pets/mine:
    get: { responses: { "200": { description: ok } } }
  /pets/{id}:
    parameters:
      - { name: id, in: path, required: true, schema: { type: integer, format: int64 } }
    get: { responses: { "200": { description: ok } } }
  /files/{name}.{ext}:
    get: { responses: { "200": { description: ok } } }
components:
  schemas:
    NewPet:
      type: object
      required: [id, name]
      properties:
        id: { type: integer, readOnly: true }
        name: { type: string, minLength: 1 }
        tag: { type: string, nullable: true }
        owner: { $ref: "#/components/schemas/Owner" }
    Owner:
      type: object
      required: [email]
      properties:
        email: { type: string, format: email }
        friend: { $ref: "#/components/schemas/Owner" }
"##;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, v.parse().unwrap());
    }
    h
}

fn head(
    spec: &Spec,
    method: Method,
    path: &str,
    query: Option<&str>,
    h: &HeaderMap,
) -> Vec<Violation> {
    spec.check_head(&method, path, query, h).1
}

#[test]
fn paths_match_with_or_without_the_server_base() {
    let spec = Spec::compile(PETS).unwrap();
    let h = headers(&[("x-tenant", "5f0c6f3e-8c5e-4c7a-9d0e-1b2a3c4d5e6f")]);
    assert_eq!(head(&spec, Method::GET, "/v1/pets", None, &h), vec![]);
    assert_eq!(head(&spec, Method::GET, "/pets", None, &h), vec![]);
    assert_eq!(head(&spec, Method::GET, "/v1/pets/7", None, &h), vec![]);
    assert_eq!(head(&spec, Method::GET, "/v1/pets/mine", None, &h), vec![]);
    assert_eq!(
        head(&spec, Method::GET, "/files/report.pdf", None, &h),
        vec![]
    );
    let v = head(&spec, Method::GET, "/v1/owners", None, &h);
    assert!(v[0].message.contains("not described"), "{v:?}");
    let v = head(&spec, Method::DELETE, "/v1/pets", None, &h);
    assert!(v[0].message.contains("described: GET, POST"), "{v:?}");
    // HEAD is answered as GET when the document has no HEAD.
    assert_eq!(head(&spec, Method::HEAD, "/v1/pets/7", None, &h), vec![]);
}

#[test]
fn parameters_are_checked_and_every_violation_listed() {
    let spec = Spec::compile(PETS).unwrap();
    let h = headers(&[("x-tenant", "5f0c6f3e-8c5e-4c7a-9d0e-1b2a3c4d5e6f")]);
    let ok = head(
        &spec,
        Method::GET,
        "/v1/pets",
        Some("limit=10&tags=cat&tags=dog"),
        &h,
    );
    assert_eq!(ok, vec![]);
    let v = head(
        &spec,
        Method::GET,
        "/v1/pets",
        Some("limit=abc&tags=cow"),
        &HeaderMap::new(),
    );
    let named: Vec<(&str, &str)> = v.iter().map(|v| (v.at, v.name.as_str())).collect();
    assert_eq!(
        named,
        vec![
            ("query", "limit"),
            ("query", "tags"),
            ("header", "x-tenant")
        ],
        "{v:?}"
    );
    assert!(v[0].message.contains("integer"), "{}", v[0].message);
    assert!(v[2].message.contains("missing"), "{}", v[2].message);
    let v = head(&spec, Method::GET, "/v1/pets", Some("limit=500"), &h);
    assert!(v[0].message.contains("100"), "{v:?}");
    let bad_uuid = headers(&[("x-tenant", "nope")]);
    let v = head(&spec, Method::GET, "/v1/pets", None, &bad_uuid);
    assert_eq!(v.len(), 1, "{v:?}");
    let v = head(&spec, Method::GET, "/v1/pets/seven", None, &h);
    assert_eq!((v[0].at, v[0].name.as_str()), ("path", "id"), "{v:?}");
}

#[test]
fn bodies_follow_their_schema_with_openapi_keywords() {
    let spec = Spec::compile(PETS).unwrap();
    let (op, v) = spec.check_head(&Method::POST, "/v1/pets", None, &HeaderMap::new());
    assert_eq!(v, vec![]);
    let body = op.unwrap().body().unwrap();
    let check = |ct: Option<&str>, b: &str| {
        let mut out = Vec::new();
        body.check(ct, b.as_bytes(), &mut out);
        out
    };
    let json = Some("application/json; charset=utf-8");
    // `id` is read-only: not required in a request; `tag` may be null.
    assert_eq!(check(json, r#"{"name":"Rex","tag":null}"#), vec![]);
    let v = check(
        json,
        r#"{"name":"","owner":{"friend":{"email":"not-an-email"}}}"#,
    );
    let at: Vec<&str> = v.iter().map(|v| v.name.as_str()).collect();
    assert!(at.contains(&"/name"), "{v:?}");
    assert!(at.contains(&"/owner"), "{v:?}"); // owner.email missing
    assert!(at.contains(&"/owner/friend/email"), "{v:?}");
    assert!(check(json, "{nope")[0].message.contains("not valid JSON"));
    assert!(check(json, "")[0].message.contains("required"));
    assert!(
        check(Some("text/plain"), "x")[0]
            .message
            .contains("not accepted")
    );
    assert!(check(None, "{}")[0].message.contains("no Content-Type"));
}

#[test]
fn swagger_2_parameters_and_bodies() {
    let spec = Spec::compile(
            r##"{"swagger":"2.0","info":{"title":"t","version":"1"},"basePath":"/api",
            "paths":{"/items":{"get":{"parameters":[
              {"name":"ids","in":"query","type":"array","items":{"type":"integer"},"collectionFormat":"csv","required":true}],
              "responses":{"200":{"description":"ok"}}},
             "post":{"parameters":[{"name":"b","in":"body","required":true,"schema":{"$ref":"#/definitions/Item"}}],
              "responses":{"200":{"description":"ok"}}}}},
            "definitions":{"Item":{"type":"object","required":["n"],"properties":{"n":{"type":"string","x-nullable":true}}}}}"##,
        )
        .unwrap();
    let h = HeaderMap::new();
    assert_eq!(
        head(&spec, Method::GET, "/api/items", Some("ids=1,2,3"), &h),
        vec![]
    );
    let v = head(&spec, Method::GET, "/api/items", Some("ids=1,x"), &h);
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].message.contains("/1"), "{v:?}");
    let (op, _) = spec.check_head(&Method::POST, "/api/items", None, &h);
    let mut out = Vec::new();
    op.unwrap()
        .body()
        .unwrap()
        .check(Some("application/json"), br#"{"n":null}"#, &mut out);
    assert_eq!(out, vec![]);
    op.unwrap()
        .body()
        .unwrap()
        .check(Some("application/json"), br#"{}"#, &mut out);
    assert_eq!(out.len(), 1, "{out:?}");
}

#[test]
fn openapi_formats_are_checked_under_draft_4() {
    let spec = Spec::compile(
            r#"{"openapi":"3.0.0","info":{"title":"t","version":"1"},"paths":{"/x":{"get":{"parameters":[
              {"name":"id","in":"query","schema":{"type":"string","format":"uuid"}},
              {"name":"day","in":"query","schema":{"type":"string","format":"date"}},
              {"name":"n","in":"query","schema":{"type":"integer","format":"int32"}}],
              "responses":{"200":{"description":"ok"}}}}}}"#,
        )
        .unwrap();
    let h = HeaderMap::new();
    let good = "id=5f0c6f3e-8c5e-4c7a-9d0e-1b2a3c4d5e6f&day=2026-12-06&n=2147483647";
    assert_eq!(head(&spec, Method::GET, "/x", Some(good), &h), vec![]);
    let v = head(
        &spec,
        Method::GET,
        "/x",
        Some("id=nope&day=2026-13-01&n=2147483648"),
        &h,
    );
    let names: Vec<&str> = v.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["id", "day", "n"], "{v:?}");
}

#[test]
fn openapi_31_uses_json_schema_2020_12() {
    let spec = Spec::compile(
            r#"{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{"/x":{"post":{
              "requestBody":{"content":{"application/json":{"schema":{"type":["string","null"],"minLength":2}}}},
              "responses":{"200":{"description":"ok"}}}}}}"#,
        )
        .unwrap();
    let (op, _) = spec.check_head(&Method::POST, "/x", None, &HeaderMap::new());
    let body = op.unwrap().body().unwrap();
    let mut out = Vec::new();
    body.check(Some("application/json"), b"null", &mut out);
    body.check(Some("application/json"), br#""ab""#, &mut out);
    assert_eq!(out, vec![]);
    body.check(Some("application/json"), br#""a""#, &mut out);
    assert_eq!(out.len(), 1);
}

#[test]
fn documents_that_cannot_be_used_are_refused_by_name() {
    let e = Spec::compile("openapi: 3.0.0\npaths:\n  /a:\n    post:\n      requestBody:\n        content:\n          application/json:\n            schema: { $ref: 'other.yaml#/X' }\n").err().unwrap();
    assert!(e.contains("another file"), "{e}");
    let e = Spec::compile("openapi: 3.0.0\npaths:\n  /a:\n    get:\n      parameters: [{ $ref: '#/components/parameters/Nope' }]\n").err().unwrap();
    assert!(e.contains("points nowhere"), "{e}");
    assert!(
        Spec::compile("just: yaml")
            .err()
            .unwrap()
            .contains("not OpenAPI")
    );
    assert!(
        Spec::compile("a: [")
            .err()
            .unwrap()
            .contains("does not parse")
    );
}
