//! Authentication, authorization, CORS and client addresses, end to end through the
//! binary: every credential type, each authorization form, the medical-records example,
//! and the store holding no secret in clear.

mod common;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// A tiny JSON server standing in for an identity provider: answers every request with
/// what `answer` returns for the request body, and counts requests.
#[derive(Clone)]
struct Idp {
    addr: SocketAddr,
    hits: Arc<AtomicU64>,
    body: Arc<Mutex<Value>>,
}

type Answer = Arc<dyn Fn(&str, &Value) -> Value + Send + Sync>;

impl Idp {
    async fn start(answer: Answer) -> Idp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let idp = Idp {
            addr: listener.local_addr().unwrap(),
            hits: Arc::new(AtomicU64::new(0)),
            body: Arc::new(Mutex::new(Value::Null)),
        };
        let shared = idp.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let shared = shared.clone();
                let answer = answer.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let shared = shared.clone();
                        let answer = answer.clone();
                        async move {
                            shared.hits.fetch_add(1, Ordering::SeqCst);
                            let bytes = req.into_body().collect().await.unwrap().to_bytes();
                            let text = String::from_utf8_lossy(&bytes).into_owned();
                            let current = shared.body.lock().unwrap().clone();
                            let out = answer(&text, &current);
                            let mut resp =
                                hyper::Response::new(Full::new(Bytes::from(out.to_string())));
                            resp.headers_mut()
                                .insert("content-type", "application/json".parse().unwrap());
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        idp
    }

    /// Serves whatever `set` last stored.
    async fn document() -> Idp {
        Idp::start(Arc::new(|_, current| current.clone())).await
    }

    fn set(&self, v: Value) {
        *self.body.lock().unwrap() = v;
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn hs256(claims: &Value, secret: &str) -> String {
    let mut claims = claims.clone();
    if claims.get("exp").is_none() {
        claims["exp"] = json!(now() + 300);
    }
    let claims = &claims;
    let input = format!(
        "{}.{}",
        b64(&json!({"alg": "HS256", "typ": "JWT"})),
        b64(claims)
    );
    let sig = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        jsonwebtoken::Algorithm::HS256,
    )
    .unwrap();
    format!("{input}.{sig}")
}

/// An Ed25519 signing key and its public JWK.
struct EdKey {
    kid: String,
    encoding: jsonwebtoken::EncodingKey,
    jwk: Value,
}

impl EdKey {
    fn new(kid: &str) -> EdKey {
        use aws_lc_rs::signature::KeyPair;
        let pair = aws_lc_rs::signature::Ed25519KeyPair::generate().unwrap();
        let der = pair.to_pkcs8().unwrap();
        let public = pair.public_key().as_ref().to_vec();
        EdKey {
            kid: kid.to_string(),
            encoding: jsonwebtoken::EncodingKey::from_ed_der(der.as_ref()),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "use": "sig", "x": URL_SAFE_NO_PAD.encode(public)}),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": self.kid});
        let input = format!("{}.{}", b64(&header), b64(claims));
        let sig = jsonwebtoken::crypto::sign(
            input.as_bytes(),
            &self.encoding,
            jsonwebtoken::Algorithm::EdDSA,
        )
        .unwrap();
        format!("{input}.{sig}")
    }
}

const PEOPLE: &str = "developers:
  - email: dev@acme.test
    organization: acme
  - email: other@beta.test
";

async fn get(node: &Node, path: &str, headers: &[(&str, &str)]) -> Reply {
    Client::new()
        .get_with(&node.proxy_url(path), headers)
        .await
        .unwrap()
}

#[tokio::test]
async fn api_keys_identify_apps_and_never_reach_the_store_in_clear() {
    let svc = MockUpstream::start("svc").await;
    let yaml = format!(
        "{}{PEOPLE}apps:
  - name: acme-web
    owner: dev@acme.test
    keys:
      - secret: acme-demo-key-0001
  - name: beta-cli
    owner: other@beta.test
    disabled: true
    keys:
      - secret: beta-demo-key-0001
",
        config(
            &[upstream("svc", &[svc.url()], "")],
            &[
                api(
                    "orders",
                    "svc",
                    &["{ path: /orders, policies: [{ key_auth: { query: api_key } }] }"]
                ),
                api("open", "svc", &["{ path: /open }"]),
            ]
        )
    );
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(NodeOptions::new().config(yaml.clone()).data_dir(dir.path())).await;

    let r = get(&node, "/orders", &[]).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(
        r.header("www-authenticate"),
        Some("ApiKey header=\"x-api-key\"")
    );
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let r = get(&node, "/orders", &[("x-api-key", "acme-demo-key-0002")]).await;
    assert_eq!(r.status, 401);

    let r = get(&node, "/orders", &[("x-api-key", "acme-demo-key-0001")]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = r.json();
    assert_eq!(seen["headers"]["x-tollgate-app"], "acme-web");
    assert_eq!(seen["headers"]["x-tollgate-developer"], "dev@acme.test");
    assert!(
        seen["headers"].get("x-api-key").is_none(),
        "the key is stripped"
    );

    // In the query: taken out before forwarding, other parameters kept.
    let r = get(&node, "/orders?a=1&api_key=acme-demo-key-0001&b=2", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["query"], "a=1&b=2");

    // A disabled app's valid key is refused with 403.
    let r = get(&node, "/orders", &[("x-api-key", "beta-demo-key-0001")]).await;
    assert_eq!(r.status, 403);

    // Nobody but the gateway names the app.
    let r = get(&node, "/open", &[("x-tollgate-app", "acme-web")]).await;
    assert!(r.json()["headers"].get("x-tollgate-app").is_none());

    // A generated key: shown once, works at once; a third key is refused.
    let created = node
        .admin_request(
            "POST",
            "/api/apps/acme-web/keys",
            &[("content-type", "application/json")],
            r#"{"label":"ci"}"#,
        )
        .await
        .unwrap();
    assert_eq!(created.status, 201, "{}", created.text());
    let key = created.json()["key"].as_str().unwrap().to_string();
    let id = created.json()["id"].as_str().unwrap().to_string();
    assert!(key.starts_with(&format!("tg_{id}_")));
    let r = get(&node, "/orders", &[("x-api-key", &key)]).await;
    assert_eq!(r.status, 200);
    let listed = node.admin_get("/api/apps/acme-web/keys").await.unwrap();
    assert!(!listed.text().contains(&key[key.len() - 20..]));
    let third = node
        .admin_request("POST", "/api/apps/acme-web/keys", &[], "")
        .await
        .unwrap();
    assert_eq!(third.status, 422, "{}", third.text());
    assert!(third.text().contains("at most two keys"));

    // Revocation: refused from the next request on.
    let del = node
        .admin_request("DELETE", &format!("/api/apps/acme-web/keys/{id}"), &[], "")
        .await
        .unwrap();
    assert_eq!(del.status, 204);
    let r = get(&node, "/orders", &[("x-api-key", &key)]).await;
    assert_eq!(r.status, 401);

    // Applying the same file again and applying the export both change nothing.
    let again = node
        .admin_request("PUT", "/api/config?dry_run=true", &[], yaml.clone())
        .await
        .unwrap();
    assert_eq!(
        again.json()["summary"],
        "0 to create, 0 to update, 0 to delete",
        "{}",
        again.text()
    );
    let export = node.admin_get("/api/config").await.unwrap().text();
    assert!(!export.contains("acme-demo-key-0001"));
    let back = node
        .admin_request("PUT", "/api/config?dry_run=true", &[], export)
        .await
        .unwrap();
    assert_eq!(
        back.json()["summary"],
        "0 to create, 0 to update, 0 to delete"
    );

    // The database file holds no key in clear.
    let db = std::fs::read(dir.path().join("tollgate.db")).unwrap();
    let wal = std::fs::read(dir.path().join("tollgate.db-wal")).unwrap_or_default();
    for secret in ["acme-demo-key-0001", "beta-demo-key-0001", key.as_str()] {
        for file in [&db, &wal] {
            assert!(
                !file.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "`{secret}` found in the database"
            );
        }
    }
}

#[tokio::test]
async fn basic_auth_checks_argon2_hashes() {
    let svc = MockUpstream::start("svc").await;
    let yaml = format!(
        "{}{PEOPLE}apps:
  - name: acme-web
    owner: dev@acme.test
    basic:
      - {{ username: acme, password: correct-horse-battery }}
",
        config(
            &[upstream("svc", &[svc.url()], "")],
            &[api(
                "orders",
                "svc",
                &["{ path: /orders, policies: [{ basic_auth: { realm: orders } }] }"]
            )]
        )
    );
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(NodeOptions::new().config(yaml).data_dir(dir.path())).await;
    let basic = |u: &str, p: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    };
    let r = get(&node, "/orders", &[]).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Basic realm=\"orders\", charset=\"UTF-8\"")
    );
    let r = get(
        &node,
        "/orders",
        &[("authorization", &basic("acme", "wrong-password"))],
    )
    .await;
    assert_eq!(r.status, 401);
    for _ in 0..3 {
        let r = get(
            &node,
            "/orders",
            &[("authorization", &basic("acme", "correct-horse-battery"))],
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["headers"]["x-tollgate-app"], "acme-web");
        assert!(r.json()["headers"].get("authorization").is_none());
    }
    let db = std::fs::read(dir.path().join("tollgate.db")).unwrap();
    let wal = std::fs::read(dir.path().join("tollgate.db-wal")).unwrap_or_default();
    for file in [&db, &wal] {
        assert!(!file.windows(21).any(|w| w == b"correct-horse-battery"));
    }
    let export = node.admin_get("/api/config").await.unwrap().text();
    assert!(export.contains("$argon2id$"), "{export}");
}

#[tokio::test]
async fn jwt_from_a_jwks_with_rotation_and_a_bound_on_refetches() {
    let svc = MockUpstream::start("svc").await;
    let idp = Idp::document().await;
    let k1 = EdKey::new("k1");
    let k2 = EdKey::new("k2");
    idp.set(json!({"keys": [k1.jwk]}));
    let policy = format!(
        "{{ jwt: {{ jwks_url: \"{}\", jwks_refresh: 300ms, issuer: [https://idp.test], audiences: [orders], forward_claims: {{ sub: x-user, tier: x-tier }} }} }}",
        idp.url("/jwks")
    );
    let yaml = format!(
        "{}{PEOPLE}apps:
  - name: acme-web
    owner: dev@acme.test
    jwt_subjects: [acme-client]
",
        config(
            &[upstream("svc", &[svc.url()], "")],
            &[api(
                "orders",
                "svc",
                &[&format!("{{ path: /orders, policies: [{policy}] }}")]
            )]
        )
    );
    let node = start(&yaml).await;
    let claims = |sub: &str| json!({"sub": sub, "iss": "https://idp.test", "aud": "orders", "exp": now() + 300, "tier": "gold"});
    let bearer = |t: String| format!("Bearer {t}");

    let r = get(&node, "/orders", &[]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let r = get(
        &node,
        "/orders",
        &[("authorization", &bearer(k1.sign(&claims("acme-client"))))],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let h = &r.json()["headers"];
    assert_eq!(h["x-tollgate-app"], "acme-web");
    assert_eq!(h["x-user"], "acme-client");
    assert_eq!(h["x-tier"], "gold");
    assert!(h.get("authorization").is_none());
    // A token whose subject is no app is still authenticated, without an app.
    let r = get(
        &node,
        "/orders",
        &[("authorization", &bearer(k1.sign(&claims("someone"))))],
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.json()["headers"].get("x-tollgate-app").is_none());
    // A claim header sent by the client is dropped when the token lacks the claim.
    let mut no_tier = claims("someone");
    no_tier.as_object_mut().unwrap().remove("tier");
    let r = get(
        &node,
        "/orders",
        &[
            ("authorization", &bearer(k1.sign(&no_tier))),
            ("x-tier", "platinum"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.json()["headers"].get("x-tier").is_none(), "{}", r.text());

    // Refused: wrong audience, expired, no expiry, unsigned, tampered.
    let mut c = claims("acme-client");
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        get(&node, "/orders", &[("authorization", &bearer(k1.sign(&c)))])
            .await
            .status,
        401
    );
    let mut c = claims("acme-client");
    c["aud"] = json!("billing");
    let r = get(&node, "/orders", &[("authorization", &bearer(k1.sign(&c)))]).await;
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );
    let mut c = claims("acme-client");
    c["exp"] = json!(now() - 3600);
    assert_eq!(
        get(&node, "/orders", &[("authorization", &bearer(k1.sign(&c)))])
            .await
            .status,
        401
    );
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none"})),
        b64(&claims("acme-client"))
    );
    assert_eq!(
        get(&node, "/orders", &[("authorization", &bearer(none))])
            .await
            .status,
        401
    );
    let good = k1.sign(&claims("acme-client"));
    let (head, rest) = good.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let mut forged_claims = claims("acme-client");
    forged_claims["tier"] = json!("platinum");
    let tampered = format!("{head}.{}.{sig}", b64(&forged_claims));
    assert_eq!(
        get(&node, "/orders", &[("authorization", &bearer(tampered))])
            .await
            .status,
        401
    );

    // The issuer rotates to k2: the unknown kid triggers one refetch.
    idp.set(json!({"keys": [k1.jwk, k2.jwk]}));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = get(
        &node,
        "/orders",
        &[("authorization", &bearer(k2.sign(&claims("acme-client"))))],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());

    // Made-up kids do not turn into a flood of fetches.
    let before = idp.hits();
    let bogus = EdKey::new("bogus");
    for _ in 0..30 {
        let r = get(
            &node,
            "/orders",
            &[("authorization", &bearer(bogus.sign(&claims("acme-client"))))],
        )
        .await;
        assert_eq!(r.status, 401);
    }
    assert!(idp.hits() - before <= 2, "{} fetches", idp.hits() - before);
}

/// The medical-records example of docs/security.md, through the binary.
#[tokio::test]
async fn medical_records_with_cedar() {
    let svc = MockUpstream::start("records").await;
    let cedar = r#"
        permit (principal, action == Action::"GET", resource)
        when {
            principal.claims has role && principal.claims.role == "doctor" &&
            principal.claims has patients &&
            principal.claims.patients.contains(resource.params.patient)
        };
        permit (principal, action == Action::"GET", resource)
        when {
            principal.claims has role && principal.claims.role == "patient" &&
            principal.subject == resource.params.patient
        };
    "#;
    let doc = json!({
        "format_version": 1,
        "upstreams": [{"name": "records", "targets": [{"url": svc.url()}]}],
        "apis": [{"name": "records", "versions": [{"version": "v1", "upstream": "records",
            "routes": [{"path": "/patients/{patient}/records"}],
            "policies": [
                {"jwt": {"keys": [{"secret": "hospital-signing-secret", "alg": "HS256"}]}},
                {"authorize": {"cedar": cedar}}
            ]}]}]
    });
    let node = start(&doc.to_string()).await;
    let token = |claims: Value| format!("Bearer {}", hs256(&claims, "hospital-signing-secret"));
    let doctor = token(json!({"sub": "dr-grey", "role": "doctor", "patients": ["p-1", "p-2"]}));
    let patient = token(json!({"sub": "p-1", "role": "patient"}));
    let call = |method: &'static str, path: &'static str, auth: String| {
        let url = node.proxy_url(path);
        async move {
            Client::new()
                .request(method, &url, &[("authorization", &auth)], "")
                .await
                .unwrap()
                .status
        }
    };
    assert_eq!(
        call("GET", "/patients/p-1/records", doctor.clone()).await,
        200
    );
    assert_eq!(
        call("GET", "/patients/p-2/records", doctor.clone()).await,
        200
    );
    assert_eq!(
        call("GET", "/patients/p-3/records", doctor.clone()).await,
        403
    );
    assert_eq!(
        call("DELETE", "/patients/p-1/records", doctor.clone()).await,
        403
    );
    assert_eq!(
        call("GET", "/patients/p-1/records", patient.clone()).await,
        200
    );
    assert_eq!(
        call("GET", "/patients/p-2/records", patient.clone()).await,
        403
    );
    // An encoded path cannot dress one patient up as another.
    assert_eq!(
        call("GET", "/patients/p-2%2f..%2fp-1/records", patient.clone()).await,
        400
    );
    assert_eq!(
        call("GET", "/patients/p-2%2fp-1/records", patient.clone()).await,
        403
    );
    assert_eq!(
        call("GET", "/patients/p-1/records", String::new()).await,
        401
    );
}

#[tokio::test]
async fn groups_and_scopes() {
    let svc = MockUpstream::start("svc").await;
    let yaml = format!(
        "{}{PEOPLE}apps:
  - name: partner
    owner: dev@acme.test
    groups: [partners]
    keys: [{{ secret: partner-key-00001 }}]
  - name: outsider
    owner: other@beta.test
    keys: [{{ secret: outsider-key-0001 }}]
",
        config(
            &[upstream("svc", &[svc.url()], "")],
            &[
                api(
                    "partners",
                    "svc",
                    &[
                        "{ path: /partners, policies: [{ key_auth: {} }, { acl: { allow: [partners] } }] }"
                    ]
                ),
                api(
                    "reports",
                    "svc",
                    &[
                        "{ path: /reports, policies: [{ jwt: { keys: [{ secret: reports-secret-01, alg: HS256 }] } }, { scopes: { required: [reports.read] } }] }"
                    ]
                ),
            ]
        )
    );
    let node = start(&yaml).await;
    assert_eq!(
        get(&node, "/partners", &[("x-api-key", "partner-key-00001")])
            .await
            .status,
        200
    );
    let r = get(&node, "/partners", &[("x-api-key", "outsider-key-0001")]).await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("no group"));
    let with = |scope: &str| {
        format!(
            "Bearer {}",
            hs256(&json!({"sub": "x", "scope": scope}), "reports-secret-01")
        )
    };
    assert_eq!(
        get(
            &node,
            "/reports",
            &[("authorization", &with("reports.read other"))]
        )
        .await
        .status,
        200
    );
    let r = get(&node, "/reports", &[("authorization", &with("other"))]).await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("reports.read"));
}

#[tokio::test]
async fn oauth2_introspection_is_cached_for_the_token_life() {
    let svc = MockUpstream::start("svc").await;
    let idp = Idp::start(Arc::new(|form: &str, _| {
        if form.contains("token=good-token") {
            json!({"active": true, "client_id": "acme-client", "sub": "user-7", "scope": "orders", "exp": now() + 600})
        } else {
            json!({"active": false})
        }
    }))
    .await;
    let policy = format!(
        "{{ oauth2_introspection: {{ url: \"{}\", client_id: gateway, client_secret: introspection-secret-1 }} }}",
        idp.url("/introspect")
    );
    let yaml = format!(
        "{}{PEOPLE}apps:
  - name: acme-web
    owner: dev@acme.test
    oauth2_clients: [acme-client]
",
        config(
            &[upstream("svc", &[svc.url()], "")],
            &[api(
                "orders",
                "svc",
                &[&format!("{{ path: /orders, policies: [{policy}] }}")]
            )]
        )
    );
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(NodeOptions::new().config(yaml).data_dir(dir.path())).await;
    for _ in 0..5 {
        let r = get(&node, "/orders", &[("authorization", "Bearer good-token")]).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["headers"]["x-tollgate-app"], "acme-web");
    }
    assert_eq!(idp.hits(), 1, "one introspection, then the cache");
    let r = get(&node, "/orders", &[("authorization", "Bearer bad-token")]).await;
    assert_eq!(r.status, 401);
    assert_eq!(get(&node, "/orders", &[]).await.status, 401);
    // The client secret is sealed in the store.
    let db = std::fs::read(dir.path().join("tollgate.db")).unwrap();
    let wal = std::fs::read(dir.path().join("tollgate.db-wal")).unwrap_or_default();
    for file in [&db, &wal] {
        assert!(!file.windows(22).any(|w| w == b"introspection-secret-1"));
    }
}

#[tokio::test]
async fn introspection_outage_is_503_not_401() {
    let svc = MockUpstream::start("svc").await;
    let dead = tollgate_testkit::free_addr().unwrap();
    let policy = format!(
        "{{ oauth2_introspection: {{ url: \"http://{dead}/introspect\", client_id: gateway, client_secret: introspection-secret-1, timeout: 1s }} }}"
    );
    let node = start(&config(
        &[upstream("svc", &[svc.url()], "")],
        &[api(
            "orders",
            "svc",
            &[&format!("{{ path: /orders, policies: [{policy}] }}")],
        )],
    ))
    .await;
    let r = get(&node, "/orders", &[("authorization", "Bearer some-token")]).await;
    assert_eq!(r.status, 503, "{}", r.text());
}

#[tokio::test]
async fn cors_preflight_is_answered_before_authentication() {
    let svc = MockUpstream::start("svc").await;
    let node = start(&format!(
        "{}{PEOPLE}apps:\n  - name: web\n    owner: dev@acme.test\n    keys: [{{ secret: web-key-0000000001 }}]\n",
        config(
            &[upstream("svc", &[svc.url()], "")],
            &[api("orders", "svc", &["{ path: /orders, methods: [GET, PUT, DELETE], policies: [{ key_auth: {} }, { cors: { origins: [\"https://app.example.com\"], methods: [GET, PUT], headers: [x-api-key, content-type], expose_headers: [x-request-id], max_age: 10m } }] }"])]
        )
    ))
    .await;
    let pre = |origin: &'static str, method: &'static str| {
        let url = node.proxy_url("/orders");
        async move {
            Client::new()
                .request(
                    "OPTIONS",
                    &url,
                    &[
                        ("origin", origin),
                        ("access-control-request-method", method),
                        ("access-control-request-headers", "x-api-key"),
                    ],
                    "",
                )
                .await
                .unwrap()
        }
    };
    let r = pre("https://app.example.com", "PUT").await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, PUT"));
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert_eq!(svc.traffic_hits(), 0, "preflights stay at the gateway");
    assert_eq!(pre("https://evil.example", "PUT").await.status, 403);
    assert_eq!(pre("https://app.example.com", "DELETE").await.status, 403);
    let r = get(
        &node,
        "/orders",
        &[
            ("origin", "https://app.example.com"),
            ("x-api-key", "web-key-0000000001"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some("x-request-id")
    );
    let r = get(
        &node,
        "/orders",
        &[
            ("origin", "https://evil.example"),
            ("x-api-key", "web-key-0000000001"),
        ],
    )
    .await;
    assert!(r.header("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn forwarded_addresses_count_only_behind_trusted_proxies() {
    let svc = MockUpstream::start("svc").await;
    let routes = ["{ path: /x, policies: [{ ip_restrict: { deny: [203.0.113.0/24] } }] }"];
    let base = config(
        &[upstream("svc", &[svc.url()], "")],
        &[api("x", "svc", &routes)],
    );
    let spoof = [("x-forwarded-for", "203.0.113.9")];

    // Not behind a trusted proxy: the header is the client's own claim and changes nothing.
    let node = start(&base).await;
    assert_eq!(get(&node, "/x", &spoof).await.status, 200);
    drop(node);

    let node = start(&format!(
        "{base}settings:\n  trusted_proxies: [127.0.0.1]\n"
    ))
    .await;
    assert_eq!(get(&node, "/x", &spoof).await.status, 403);
    assert_eq!(
        get(
            &node,
            "/x",
            &[("x-forwarded-for", "203.0.113.9, 198.51.100.4")]
        )
        .await
        .status,
        200
    );
    assert_eq!(get(&node, "/x", &[]).await.status, 200);
}

#[tokio::test]
async fn bad_auth_configuration_is_refused_with_its_path() {
    let svc = MockUpstream::start("svc").await;
    let node = start(&config(
        &[upstream("svc", &[svc.url()], "")],
        &[api("x", "svc", &["{ path: /x }"])],
    ))
    .await;
    let bad = config(
        &[upstream("svc", &[svc.url()], "")],
        &[api(
            "x",
            "svc",
            &[
                "{ path: /x, policies: [{ authorize: { cedar: \"permit(principal, action, resource) when { \" } }] }",
            ],
        )],
    );
    let r = node
        .admin_request("PUT", "/api/config", &[], bad)
        .await
        .unwrap();
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("authorize.cedar"), "{}", r.text());
    let bad = config(
        &[upstream("svc", &[svc.url()], "")],
        &[api(
            "x",
            "svc",
            &["{ path: /x, policies: [{ jwt: { keys: [{ pem: \"not a key\", alg: RS256 }] } }] }"],
        )],
    );
    let r = node
        .admin_request("PUT", "/api/config", &[], bad)
        .await
        .unwrap();
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("PEM"), "{}", r.text());
    // The running configuration is untouched.
    assert_eq!(get(&node, "/x", &[]).await.status, 200);
}

#[tokio::test]
async fn cached_answers_are_never_shared_between_callers() {
    let svc = MockUpstream::start("svc").await;
    let yaml = format!(
        "{}{PEOPLE}apps:
  - name: one
    owner: dev@acme.test
    keys: [{{ secret: key-of-app-one-01 }}]
  - name: two
    owner: other@beta.test
    keys: [{{ secret: key-of-app-two-01 }}]
",
        config(
            &[upstream("svc", &[svc.url()], "")],
            &[api(
                "me",
                "svc",
                &["{ path: /me, policies: [{ key_auth: {} }, { cache: { ttl: 1m } }] }"]
            )]
        )
    );
    let node = start(&yaml).await;
    let one = get(&node, "/me", &[("x-api-key", "key-of-app-one-01")]).await;
    assert_eq!(one.json()["headers"]["x-tollgate-app"], "one");
    let two = get(&node, "/me", &[("x-api-key", "key-of-app-two-01")]).await;
    assert_eq!(
        two.json()["headers"]["x-tollgate-app"],
        "two",
        "not app one's answer"
    );
    let again = get(&node, "/me", &[("x-api-key", "key-of-app-one-01")]).await;
    assert_eq!(again.header("x-cache"), Some("HIT"));
    assert_eq!(again.json()["headers"]["x-tollgate-app"], "one");
}
