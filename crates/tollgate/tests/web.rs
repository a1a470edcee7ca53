//! The dashboard and the developer portal over plain HTTP: status codes, redirects to
//! sign-in, sessions and CSRF, the sign-in rate limit, roles, and that a developer reaches
//! only their own apps. The journeys in a real browser are in `browser.rs`.

mod common;
use std::collections::HashMap;

use common::*;
use serde_json::json;

const CONFIG: &str = r#"
format_version: 1
upstreams:
  - name: svc
    targets: [{ url: "http://UPSTREAM" }]
apis:
  - name: weather
    title: Weather
    visibility: public
    versions:
      - version: v1
        upstream: svc
        routes:
          - path: /weather/v1
            policies: [{ key_auth: {} }]
products:
  - name: weather
    title: Weather data
    visibility: public
    apis: [weather@v1]
    plans:
      - name: free
        quota: { limit: 1000, period: month }
      - name: pro
        approval: manual
        price: { base_fee: "49.00" }
"#;

/// A cookie-keeping client for one person's pages.
struct Visitor {
    base: String,
    client: Client,
    cookies: HashMap<String, String>,
}

impl Visitor {
    fn new(base: String) -> Visitor {
        Visitor {
            base,
            client: Client::new(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, reply: &Reply) {
        for v in reply.headers.get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap();
            let (k, val) = pair.split_once('=').unwrap();
            if v.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), val.to_string());
            }
        }
    }

    async fn get(&mut self, path: &str) -> Reply {
        let cookie = self.cookie_header();
        let reply = self
            .client
            .get_with(&format!("{}{path}", self.base), &[("cookie", &cookie)])
            .await
            .unwrap();
        self.keep_cookies(&reply);
        reply
    }

    async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let body: String = fields
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let cookie = self.cookie_header();
        let reply = self
            .client
            .request(
                "POST",
                &format!("{}{path}", self.base),
                &[
                    ("cookie", &cookie),
                    ("content-type", "application/x-www-form-urlencoded"),
                ],
                body,
            )
            .await
            .unwrap();
        self.keep_cookies(&reply);
        reply
    }

    /// The CSRF token in a page's forms.
    async fn csrf(&mut self, path: &str) -> String {
        let page = self.get(path).await;
        csrf_in(&page.text()).unwrap_or_else(|| panic!("no csrf on {path}: {}", page.text()))
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn csrf_in(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    let end = html[at..].find('"')?;
    Some(html[at..at + end].to_string())
}

async fn node() -> (Node, MockUpstream) {
    let upstream = MockUpstream::start("svc").await;
    let config = CONFIG.replace("http://UPSTREAM", &upstream.url());
    let node = Node::start(bin(), Some(&config)).await.unwrap();
    (node, upstream)
}

async fn add_user(node: &Node, email: &str, role: &str) {
    let reply = node
        .admin_request(
            "POST",
            "/api/users",
            &[("content-type", "application/json")],
            json!({ "email": email, "password": "correct horse battery", "role": role })
                .to_string(),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 201, "{}", reply.text());
}

async fn dashboard_sign_in(node: &Node, email: &str) -> Visitor {
    let mut v = Visitor::new(node.admin_url(""));
    let csrf = v.csrf("/login").await;
    let reply = v
        .post_form(
            "/login",
            &[
                ("csrf", &csrf),
                ("email", email),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(reply.status, 303, "{}", reply.text());
    assert_eq!(reply.header("location"), Some("/"));
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_without_a_session_go_to_sign_in() {
    let (node, _up) = node().await;
    let mut dash = Visitor::new(node.admin_url(""));
    for path in [
        "/",
        "/apis",
        "/products",
        "/subscriptions",
        "/apps",
        "/invoices",
        "/audit",
        "/nodes",
        "/users",
    ] {
        let reply = dash.get(path).await;
        assert_eq!(reply.status, 303, "{path}");
        assert_eq!(reply.header("location"), Some("/login"), "{path}");
    }
    let login = dash.get("/login").await;
    assert_eq!(login.status, 200);
    assert!(login.text().contains("Sign in to the dashboard"));
    assert!(login.header("content-security-policy").is_some());
    // The admin API is unchanged: no session, no token, 401.
    assert_eq!(dash.get("/api/apis").await.status, 401);
    // A forged session cookie is no session.
    dash.cookies
        .insert("tg_dashboard".to_string(), "0".repeat(64));
    assert_eq!(dash.get("/").await.status, 303);
    assert_eq!(dash.get("/api/apis").await.status, 401);

    let mut portal = Visitor::new(node.portal_url(""));
    for path in ["/apps", "/apps/some-app"] {
        let reply = portal.get(path).await;
        assert_eq!(reply.status, 303, "{path}");
        assert!(
            reply
                .header("location")
                .unwrap()
                .starts_with("/login?next=%2Fapps"),
            "{path}: {:?}",
            reply.header("location")
        );
    }
    for path in ["/", "/docs/weather/v1", "/signup", "/login", "/reset"] {
        assert_eq!(portal.get(path).await.status, 200, "{path}");
    }
    assert_eq!(portal.get("/no-such-page").await.status, 404);
    assert_eq!(portal.get("/docs/weather/v9").await.status, 404);
    assert_eq!(portal.get("/assets/app.css").await.status, 200);
    assert_eq!(portal.get("/assets/nothing.js").await.status, 404);
    let catalog = portal.get("/").await.text();
    assert!(
        catalog.contains("Weather data") && catalog.contains("49.00 USD / month"),
        "{catalog}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_sessions_follow_roles_and_need_csrf() {
    let (node, _up) = node().await;
    add_user(&node, "owner@example.com", "admin").await;
    add_user(&node, "viewer@example.com", "viewer").await;

    // Wrong password, and a form without its cookie.
    let mut v = Visitor::new(node.admin_url(""));
    let csrf = v.csrf("/login").await;
    let reply = v
        .post_form(
            "/login",
            &[
                ("csrf", &csrf),
                ("email", "owner@example.com"),
                ("password", "wrong password!"),
            ],
        )
        .await;
    assert_eq!(reply.status, 401);
    assert!(reply.text().contains("do not match"));
    let mut stranger = Visitor::new(node.admin_url(""));
    let reply = stranger
        .post_form(
            "/login",
            &[
                ("csrf", &csrf),
                ("email", "owner@example.com"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(reply.status, 403, "a login form needs its own cookie");

    let mut admin = dashboard_sign_in(&node, "owner@example.com").await;
    let overview = admin.get("/").await;
    assert_eq!(overview.status, 200);
    assert!(overview.text().contains("owner@example.com"));
    // The session cookie is HttpOnly and SameSite=Strict.
    let reply = {
        let mut fresh = Visitor::new(node.admin_url(""));
        let csrf = fresh.csrf("/login").await;
        fresh
            .post_form(
                "/login",
                &[
                    ("csrf", &csrf),
                    ("email", "owner@example.com"),
                    ("password", "correct horse battery"),
                ],
            )
            .await
    };
    let set = reply.header("set-cookie").unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );

    // The session calls the API: reads freely, changes only with the CSRF header.
    assert_eq!(admin.get("/api/apis").await.status, 200);
    let cookie = admin.cookie_header();
    let no_csrf = admin
        .client
        .request(
            "POST",
            &node.admin_url("/api/users"),
            &[("cookie", &cookie), ("content-type", "application/json")],
            json!({"email": "x@example.com", "password": "long enough pass"}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(no_csrf.status, 403, "{}", no_csrf.text());
    let page_csrf = admin.csrf("/users").await;
    let with_csrf = admin
        .client
        .request(
            "POST",
            &node.admin_url("/api/users"),
            &[
                ("cookie", &cookie),
                ("content-type", "application/json"),
                ("x-csrf-token", &page_csrf),
            ],
            json!({"email": "x@example.com", "password": "long enough pass"}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(with_csrf.status, 201, "{}", with_csrf.text());

    // A form with errors shows them next to the field and keeps what was typed.
    let reply = admin
        .post_form(
            "/users",
            &[
                ("csrf", &page_csrf),
                ("email", "not-an-email"),
                ("name", "Grace"),
                ("password", "short"),
                ("role", "viewer"),
            ],
        )
        .await;
    assert_eq!(reply.status, 422);
    let html = reply.text();
    assert!(html.contains("id=\"new-email-error\""), "{html}");
    assert!(html.contains("id=\"new-password-error\""), "{html}");
    assert!(html.contains("value=\"Grace\""), "{html}");
    // A user with a team, from the form.
    let reply = admin
        .post_form(
            "/users",
            &[
                ("csrf", &page_csrf),
                ("email", "teamed@example.com"),
                ("password", "long enough pass"),
                ("role", "editor"),
                ("team", "payments"),
            ],
        )
        .await;
    assert_eq!(
        reply.header("location"),
        Some("/users?msg=user-created"),
        "{}",
        reply.text()
    );
    let user = node
        .admin_get("/api/users/teamed@example.com")
        .await
        .unwrap()
        .json();
    assert_eq!(user["team"], "payments", "{user}");
    assert!(admin.get("/users").await.text().contains("payments"));
    // A form with a wrong CSRF token changes nothing.
    let reply = admin
        .post_form(
            "/users",
            &[
                ("csrf", "forged"),
                ("email", "y@example.com"),
                ("password", "long enough pass"),
                ("role", "viewer"),
            ],
        )
        .await;
    assert_eq!(reply.status, 403);
    assert_eq!(
        node.admin_get("/api/users/y@example.com")
            .await
            .unwrap()
            .status,
        404
    );

    // A viewer sees the pages, no change buttons, and is refused what needs admin.
    let mut viewer = dashboard_sign_in(&node, "viewer@example.com").await;
    assert_eq!(viewer.get("/apis").await.status, 200);
    let subs = viewer.get("/subscriptions").await.text();
    assert!(!subs.contains(">Approve<"));
    assert_eq!(viewer.get("/users").await.status, 403);
    assert_eq!(viewer.get("/audit").await.status, 403);
    // Even with the page's CSRF token, the viewer's session cannot change anything.
    let csrf = viewer.csrf("/apis").await;
    let reply = viewer
        .post_form(
            "/apis/weather/versions/v1/status",
            &[("csrf", &csrf), ("status", "deprecated")],
        )
        .await;
    assert!(reply.text().contains("editor role"), "{}", reply.text());
    let version = node
        .admin_get("/api/apis/weather/versions/v1")
        .await
        .unwrap()
        .json();
    assert_eq!(version.get("status"), None, "still published: {version}");

    // Signing out ends the session on the server.
    let old = viewer.cookies.clone();
    let reply = viewer.post_form("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(reply.status, 303);
    viewer.cookies = old;
    assert_eq!(viewer.get("/").await.status, 303);

    // The audit log names the person who made a change.
    let audit = node
        .admin_get("/api/audit?newest=true&limit=5")
        .await
        .unwrap()
        .json();
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"] == "user:owner@example.com" && e["name"] == "x@example.com"),
        "{audit}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_failed_sign_ins_are_refused_for_a_while() {
    let (node, _up) = node().await;
    add_user(&node, "ada@example.com", "viewer").await;
    let mut v = Visitor::new(node.admin_url(""));
    for _ in 0..tollgate_web::LOGIN_FAILURES_PER_EMAIL {
        let csrf = v.csrf("/login").await;
        let reply = v
            .post_form(
                "/login",
                &[
                    ("csrf", &csrf),
                    ("email", "ada@example.com"),
                    ("password", "guess guess guess"),
                ],
            )
            .await;
        assert_eq!(reply.status, 401);
    }
    // Now even the right password waits.
    let csrf = v.csrf("/login").await;
    let reply = v
        .post_form(
            "/login",
            &[
                ("csrf", &csrf),
                ("email", "ada@example.com"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(reply.status, 429, "{}", reply.text());
    let wait: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!(wait > 60, "{wait}");
    assert!(reply.text().contains("Too many failed sign-ins"));
}

async fn portal_sign_up(node: &Node, email: &str) -> Visitor {
    let mut v = Visitor::new(node.portal_url(""));
    let csrf = v.csrf("/signup").await;
    let reply = v
        .post_form(
            "/signup",
            &[
                ("csrf", &csrf),
                ("email", email),
                ("name", "Dev"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(reply.status, 303, "{}", reply.text());
    assert_eq!(reply.header("location"), Some("/apps?msg=welcome"));
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn developers_sign_up_and_reach_only_their_own_apps() {
    let (node, upstream) = node().await;
    let mut alice = portal_sign_up(&node, "alice@example.com").await;
    let set = alice.get("/apps").await;
    assert_eq!(set.status, 200);

    // The same e-mail again, and bad input: errors next to the fields.
    let mut again = Visitor::new(node.portal_url(""));
    let csrf = again.csrf("/signup").await;
    let reply = again
        .post_form(
            "/signup",
            &[
                ("csrf", &csrf),
                ("email", "Alice@example.com"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(reply.status, 422);
    assert!(
        reply.text().contains("id=\"email-error\""),
        "{}",
        reply.text()
    );
    let reply = again
        .post_form(
            "/signup",
            &[
                ("csrf", &csrf),
                ("email", "bob@example.com"),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(reply.status, 422);
    assert!(reply.text().contains("id=\"password-error\""));
    assert!(reply.text().contains("value=\"bob@example.com\""));

    // Alice makes an app, subscribes it, and gets a key that works at the gateway.
    let csrf = alice.csrf("/apps").await;
    let reply = alice
        .post_form("/apps", &[("csrf", &csrf), ("name", "alice-app")])
        .await;
    assert_eq!(reply.status, 303, "{}", reply.text());
    let reply = alice
        .post_form("/apps", &[("csrf", &csrf), ("name", "alice-app")])
        .await;
    assert_eq!(reply.status, 422, "a taken name is refused");
    assert!(reply.text().contains("id=\"app-name-error\""));
    let reply = alice
        .post_form(
            "/apps/alice-app/subscribe",
            &[("csrf", &csrf), ("plan", "weather:free")],
        )
        .await;
    assert_eq!(
        reply.header("location"),
        Some("/apps/alice-app?msg=subscribed")
    );
    let reply = alice
        .post_form(
            "/apps/alice-app/keys",
            &[("csrf", &csrf), ("label", "prod")],
        )
        .await;
    assert_eq!(reply.status, 200);
    let html = reply.text();
    let at = html.find("id=\"new-secret\">").unwrap() + "id=\"new-secret\">".len();
    let secret = &html[at..at + html[at..].find('<').unwrap()];
    let call = Client::new()
        .get_with(
            &node.proxy_url("/weather/v1/today"),
            &[("x-api-key", secret)],
        )
        .await
        .unwrap();
    assert_eq!(call.status, 200, "{}", call.text());
    assert_eq!(upstream.requests().len(), 1);
    // The secret is shown once: the app page does not show it again.
    assert!(!alice.get("/apps/alice-app").await.text().contains(secret));
    // The call counts against the plan's monthly quota on the app's page.
    let mut page = String::new();
    for _ in 0..20 {
        page = alice.get("/apps/alice-app").await.text();
        if page.contains("1 of 1,000 requests this month") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(page.contains("1 of 1,000 requests this month"), "{page}");

    // Bob sees none of it and cannot touch it.
    let mut bob = portal_sign_up(&node, "bob@example.com").await;
    let apps = bob.get("/apps").await.text();
    assert!(!apps.contains("alice-app"), "{apps}");
    let reply = bob.get("/apps/alice-app").await;
    assert_eq!(reply.status, 303);
    let csrf = bob.csrf("/apps").await;
    let reply = bob
        .post_form("/apps/alice-app/keys", &[("csrf", &csrf)])
        .await;
    assert_eq!(reply.status, 303);
    let keys = node
        .admin_get("/api/apps/alice-app/keys")
        .await
        .unwrap()
        .json();
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1, "{keys}");
    let reply = bob.get("/apps/alice-app/usage?metric=requests").await;
    assert_eq!(reply.status, 404);

    // A manual plan waits for approval.
    let csrf = bob.csrf("/apps").await;
    bob.post_form("/apps", &[("csrf", &csrf), ("name", "bob-app")])
        .await;
    let reply = bob
        .post_form(
            "/apps/bob-app/subscribe",
            &[("csrf", &csrf), ("plan", "weather:pro")],
        )
        .await;
    assert_eq!(reply.header("location"), Some("/apps/bob-app?msg=pending"));
    let sub = node
        .admin_get("/api/subscriptions/bob-app:weather")
        .await
        .unwrap()
        .json();
    assert_eq!(sub["status"], "pending", "{sub}");

    // Revoking the key stops it at the gateway.
    let id = keys["keys"][0]["id"].as_str().unwrap().to_string();
    let csrf = alice.csrf("/apps/alice-app").await;
    let reply = alice
        .post_form(
            &format!("/apps/alice-app/keys/{id}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(
        reply.header("location"),
        Some("/apps/alice-app?msg=key-revoked")
    );
    let refused = wait_until(std::time::Duration::from_secs(5), || async {
        Client::new()
            .get_with(
                &node.proxy_url("/weather/v1/today"),
                &[("x-api-key", secret)],
            )
            .await
            .is_ok_and(|r| r.status == 401)
    })
    .await;
    assert!(refused, "a revoked key is refused");

    // The audit log names the developer.
    let audit = node
        .admin_get("/api/audit?newest=true&limit=50")
        .await
        .unwrap()
        .json();
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"] == "developer:alice@example.com" && e["name"] == "alice-app"),
        "{audit}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_reset_link_works_once() {
    let (node, _up) = node().await;
    let mut dev = portal_sign_up(&node, "carol@example.com").await;
    let mut v = Visitor::new(node.portal_url(""));
    let csrf = v.csrf("/reset").await;
    let reply = v
        .post_form("/reset", &[("csrf", &csrf), ("email", "carol@example.com")])
        .await;
    assert_eq!(reply.header("location"), Some("/login?msg=reset-sent"));
    // An unknown address gets the same answer and no link.
    let reply = v
        .post_form(
            "/reset",
            &[("csrf", &csrf), ("email", "nobody@example.com")],
        )
        .await;
    assert_eq!(reply.header("location"), Some("/login?msg=reset-sent"));
    let logs = node.logs();
    let link = logs
        .lines()
        .find(|l| l.contains("password reset requested") && l.contains("carol@example.com"))
        .unwrap_or_else(|| panic!("no reset link in the log:\n{logs}"));
    assert!(
        !logs.contains("nobody@example.com\" link")
            && !logs
                .lines()
                .any(|l| l.contains("password reset requested") && l.contains("nobody@"))
    );
    let token = link
        .split("token=")
        .nth(1)
        .unwrap()
        .split(|c: char| !c.is_ascii_hexdigit())
        .next()
        .unwrap()
        .to_string();

    let page = v.get(&format!("/reset/confirm?token={token}")).await;
    assert_eq!(page.status, 200);
    let csrf = csrf_in(&page.text()).unwrap();
    let reply = v
        .post_form(
            "/reset/confirm",
            &[
                ("csrf", &csrf),
                ("token", &token),
                ("password", "a brand new secret"),
            ],
        )
        .await;
    assert_eq!(reply.header("location"), Some("/login?msg=password-set"));
    // The old session ended with the password change.
    assert_eq!(dev.get("/apps").await.status, 303);
    // Used once: the link does not work again.
    let reply = v
        .post_form(
            "/reset/confirm",
            &[
                ("csrf", &csrf),
                ("token", &token),
                ("password", "another new secret"),
            ],
        )
        .await;
    assert_eq!(reply.status, 400);
    // The new password signs in.
    let csrf = v.csrf("/login").await;
    let reply = v
        .post_form(
            "/login",
            &[
                ("csrf", &csrf),
                ("email", "carol@example.com"),
                ("password", "a brand new secret"),
                ("next", "/apps"),
            ],
        )
        .await;
    assert_eq!(reply.status, 303, "{}", reply.text());
    assert_eq!(reply.header("location"), Some("/apps"));
    // An off-site `next` is not followed.
    let csrf = v.csrf("/login").await;
    let reply = v
        .post_form(
            "/login",
            &[
                ("csrf", &csrf),
                ("email", "carol@example.com"),
                ("password", "a brand new secret"),
                ("next", "//evil.example/"),
            ],
        )
        .await;
    assert_eq!(reply.header("location"), Some("/apps"));
}

#[tokio::test(flavor = "multi_thread")]
async fn users_api_enforces_roles() {
    let (node, _up) = node().await;
    let editor = node
        .admin_request(
            "POST",
            "/api/tokens",
            &[("content-type", "application/json")],
            json!({"name": "ed", "role": "editor"}).to_string(),
        )
        .await
        .unwrap()
        .json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let admin = node
        .admin_request(
            "POST",
            "/api/tokens",
            &[("content-type", "application/json")],
            json!({"name": "ad", "role": "admin"}).to_string(),
        )
        .await
        .unwrap()
        .json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let call =
        |token: String, method: &'static str, path: &'static str, body: serde_json::Value| {
            let url = node.admin_url(path);
            async move {
                Client::new()
                    .request(
                        method,
                        &url,
                        &[
                            ("authorization", &format!("Bearer {token}")),
                            ("content-type", "application/json"),
                        ],
                        body.to_string(),
                    )
                    .await
                    .unwrap()
            }
        };
    assert_eq!(
        call(editor.clone(), "GET", "/api/users", json!(null))
            .await
            .status,
        403
    );
    let reply = call(
        admin.clone(),
        "POST",
        "/api/users",
        json!({"email": "o@example.com", "password": "long enough pass", "role": "owner"}),
    )
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text());
    assert_eq!(reply.json()["errors"][0]["path"], "role");
    let reply = call(
        admin.clone(),
        "POST",
        "/api/users",
        json!({"email": "a@example.com", "password": "long enough pass", "role": "admin"}),
    )
    .await;
    assert_eq!(reply.status, 201);
    assert!(reply.json().get("password_hash").is_none());
    let reply = call(
        admin.clone(),
        "POST",
        "/api/users",
        json!({"email": "a@example.com", "password": "long enough pass"}),
    )
    .await;
    assert_eq!(reply.status, 422);
    // The owner token made by the node outranks; an admin cannot remove an owner.
    let reply = node
        .admin_request(
            "POST",
            "/api/users",
            &[("content-type", "application/json")],
            json!({"email": "boss@example.com", "password": "long enough pass", "role": "owner"})
                .to_string(),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 201);
    assert_eq!(
        call(
            admin.clone(),
            "DELETE",
            "/api/users/boss@example.com",
            json!(null)
        )
        .await
        .status,
        403
    );
    assert_eq!(
        call(
            admin.clone(),
            "PATCH",
            "/api/users/a@example.com",
            json!({"disabled": true})
        )
        .await
        .status,
        200
    );
    assert_eq!(
        call(
            admin.clone(),
            "DELETE",
            "/api/users/a@example.com",
            json!(null)
        )
        .await
        .status,
        204
    );
    assert_eq!(
        call(admin, "DELETE", "/api/users/a@example.com", json!(null))
            .await
            .status,
        404
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_developers_data_is_exported_and_erased() {
    let (node, _up) = node().await;
    let mut dev = portal_sign_up(&node, "erin@example.com").await;
    let csrf = dev.csrf("/apps").await;
    dev.post_form("/apps", &[("csrf", &csrf), ("name", "erin-app")])
        .await;
    dev.post_form(
        "/apps/erin-app/subscribe",
        &[("csrf", &csrf), ("plan", "weather:free")],
    )
    .await;
    let html = dev
        .post_form("/apps/erin-app/keys", &[("csrf", &csrf), ("label", "ci")])
        .await
        .text();
    let at = html.find("id=\"new-secret\">").unwrap() + "id=\"new-secret\">".len();
    let secret = html[at..at + html[at..].find('<').unwrap()].to_string();
    let call = Client::new()
        .get_with(&node.proxy_url("/weather/v1/x"), &[("x-api-key", &secret)])
        .await
        .unwrap();
    assert_eq!(call.status, 200);
    let counted = wait_until(std::time::Duration::from_secs(10), || async {
        node.admin_get("/api/developers/erin@example.com/export")
            .await
            .is_ok_and(|r| r.json()["usage"][0]["requests"] == 1)
    })
    .await;
    assert!(counted, "the export counts the call");

    let export = node
        .admin_get("/api/developers/erin@example.com/export")
        .await
        .unwrap();
    assert_eq!(export.status, 200);
    let body = export.json();
    assert_eq!(body["developer"]["email"], "erin@example.com");
    assert_eq!(body["portal_account"]["email"], "erin@example.com");
    assert_eq!(body["apps"][0]["name"], "erin-app");
    assert_eq!(body["apps"][0]["keys"][0]["label"], "ci");
    assert_eq!(body["subscriptions"][0]["plan"], "free");
    let text = export.text();
    assert!(
        !text.contains(&secret) && !text.contains("argon2") && !text.contains("\"hash\""),
        "{text}"
    );

    let erase = node
        .admin_request("POST", "/api/developers/erin@example.com/erase", &[], "")
        .await
        .unwrap();
    assert_eq!(erase.status, 200, "{}", erase.text());
    let body = erase.json();
    assert_eq!(body["removed"]["apps"][0], "erin-app");
    assert_eq!(body["removed"]["portal_accounts"], 1);
    assert!(body["removed"]["sessions"].as_u64().unwrap() >= 1);

    // Gone everywhere: the config, the gateway, the portal.
    assert_eq!(
        node.admin_get("/api/developers/erin@example.com")
            .await
            .unwrap()
            .status,
        404
    );
    assert_eq!(
        node.admin_get("/api/apps/erin-app").await.unwrap().status,
        404
    );
    assert_eq!(
        node.admin_get("/api/developers/erin@example.com/export")
            .await
            .unwrap()
            .status,
        404
    );
    let refused = wait_until(std::time::Duration::from_secs(5), || async {
        Client::new()
            .get_with(&node.proxy_url("/weather/v1/x"), &[("x-api-key", &secret)])
            .await
            .is_ok_and(|r| r.status == 401)
    })
    .await;
    assert!(refused, "the erased app's key is refused");
    assert_eq!(dev.get("/apps").await.status, 303, "the session ended");
    let mut again = Visitor::new(node.portal_url(""));
    let csrf = again.csrf("/login").await;
    let reply = again
        .post_form(
            "/login",
            &[
                ("csrf", &csrf),
                ("email", "erin@example.com"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(reply.status, 401, "the account is gone");
    // The erasure itself is in the audit log.
    let audit = node
        .admin_get("/api/audit?newest=true&limit=10")
        .await
        .unwrap()
        .json();
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "developer" && e["op"] == "delete"),
        "{audit}"
    );
    assert_eq!(
        node.admin_request("POST", "/api/developers/erin@example.com/erase", &[], "")
            .await
            .unwrap()
            .status,
        404
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn developers_download_their_data_and_delete_their_account() {
    let (node, _up) = node().await;
    let mut dev = portal_sign_up(&node, "finn@example.com").await;
    let csrf = dev.csrf("/account").await;
    dev.post_form("/apps", &[("csrf", &csrf), ("name", "finn-app")])
        .await;
    let export = dev.get("/account/export").await;
    assert_eq!(export.status, 200);
    assert!(
        export
            .header("content-disposition")
            .unwrap()
            .contains("attachment")
    );
    let data = export.json();
    assert_eq!(data["developer"]["email"], "finn@example.com");
    assert_eq!(data["apps"][0]["name"], "finn-app");
    // A wrong password deletes nothing.
    let reply = dev
        .post_form(
            "/account/delete",
            &[("csrf", &csrf), ("password", "not my password")],
        )
        .await;
    assert_eq!(reply.status, 422);
    assert_eq!(
        node.admin_get("/api/apps/finn-app").await.unwrap().status,
        200
    );
    let reply = dev
        .post_form(
            "/account/delete",
            &[("csrf", &csrf), ("password", "correct horse battery")],
        )
        .await;
    assert_eq!(reply.header("location"), Some("/?msg=account-deleted"));
    assert_eq!(
        node.admin_get("/api/apps/finn-app").await.unwrap().status,
        404
    );
    assert_eq!(
        node.admin_get("/api/developers/finn@example.com")
            .await
            .unwrap()
            .status,
        404
    );
    assert_eq!(dev.get("/account").await.status, 303);
}
