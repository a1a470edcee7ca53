//! Who may do what on the admin API, through the real binary: roles on every endpoint
//! group, token scopes, token expiry and revocation, and teams scoping configuration changes.

mod common;
use common::*;
use serde_json::{Value, json};

const FORBIDDEN: &str = "https://tollgate.dev/problems/forbidden";

/// Calls the admin API with `token`.
async fn call(node: &Node, token: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
    let bearer = format!("Bearer {token}");
    let mut headers = vec![("authorization", bearer.as_str())];
    if body.is_some() {
        headers.push(("content-type", "application/json"));
    }
    Client::new()
        .request(
            method,
            &node.admin_url(path),
            &headers,
            body.map(|b| b.to_string()).unwrap_or_default(),
        )
        .await
        .unwrap()
}

/// Creates a token as `creator` (the node's owner token when `None`); answers the reply.
async fn create_token(node: &Node, creator: Option<&str>, body: Value) -> Reply {
    match creator {
        Some(t) => call(node, t, "POST", "/api/tokens", Some(body)).await,
        None => node
            .admin_request(
                "POST",
                "/api/tokens",
                &[("content-type", "application/json")],
                body.to_string(),
            )
            .await
            .unwrap(),
    }
}

/// A new token from the owner; answers its secret.
async fn token(node: &Node, body: Value) -> String {
    let r = create_token(node, None, body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["token"].as_str().unwrap().to_string()
}

fn assert_forbidden(r: &Reply, mentions: &str, what: &str) {
    assert_eq!(r.status, 403, "{what}: {}", r.text());
    let body = r.json();
    assert_eq!(body["type"], FORBIDDEN, "{what}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(mentions),
        "{what}: `{detail}` should mention {mentions}"
    );
}

/// The configuration's revision, from `GET /api/config`.
async fn revision(node: &Node) -> String {
    let r = node.admin_get("/api/config").await.unwrap();
    assert_eq!(r.status, 200);
    r.header("etag").unwrap().to_string()
}

const ROLES: [&str; 4] = ["viewer", "editor", "admin", "owner"];

fn rank(role: &str) -> usize {
    ROLES.iter().position(|r| *r == role).unwrap()
}

/// One endpoint group: a read, a write, the lowest role each needs, and what an allowed
/// write answers (a success or a validation answer, never 401 or 403).
struct Group {
    name: &'static str,
    read: &'static str,
    read_role: &'static str,
    write: Option<Write>,
    write_role: &'static str,
}

/// A change: method, path, the body for a role, and the statuses an allowed role gets.
struct Write(
    &'static str,
    &'static str,
    fn(&str) -> Value,
    &'static [u16],
);

fn groups() -> Vec<Group> {
    vec![
        Group {
            name: "config",
            read: "/api/upstreams",
            read_role: "viewer",
            write: Some(Write(
                "POST",
                "/api/upstreams",
                |role| json!({"name": format!("up-{role}"), "targets": [{"url": "http://127.0.0.1:9"}]}),
                &[201],
            )),
            write_role: "editor",
        },
        Group {
            name: "identities",
            read: "/api/apps",
            read_role: "viewer",
            write: Some(Write(
                "POST",
                "/api/developers",
                |role| json!({"email": format!("dev-{role}@example.com")}),
                &[201],
            )),
            write_role: "editor",
        },
        Group {
            name: "products",
            read: "/api/products",
            read_role: "viewer",
            // An incomplete subscription: refused by validation, not by role.
            write: Some(Write(
                "POST",
                "/api/subscriptions",
                |_| json!({}),
                &[400, 422],
            )),
            write_role: "editor",
        },
        Group {
            name: "billing",
            read: "/api/webhooks/deliveries",
            read_role: "viewer",
            write: Some(Write(
                "POST",
                "/api/subscriptions/none/credit",
                |_| json!({"amount": "10"}),
                &[404],
            )),
            write_role: "editor",
        },
        Group {
            name: "analytics",
            read: "/api/nodes",
            read_role: "viewer",
            write: Some(Write(
                "POST",
                "/api/alerts/none/unblock",
                |_| json!({}),
                &[404],
            )),
            write_role: "editor",
        },
        // The audit log has no write endpoint.
        Group {
            name: "audit",
            read: "/api/audit/verify",
            read_role: "admin",
            write: None,
            write_role: "admin",
        },
        Group {
            name: "tokens",
            read: "/api/tokens",
            read_role: "admin",
            write: Some(Write(
                "POST",
                "/api/tokens",
                |role| json!({"name": format!("made-by-{role}"), "role": "viewer"}),
                &[201],
            )),
            write_role: "admin",
        },
    ]
}

#[tokio::test]
async fn every_endpoint_group_enforces_roles() {
    let node = start("format_version: 1\n").await;
    for role in ROLES {
        let t = token(&node, json!({"name": role, "role": role})).await;
        for g in groups() {
            let what = format!("{role} reading {} ({})", g.read, g.name);
            let r = call(&node, &t, "GET", g.read, None).await;
            if rank(role) >= rank(g.read_role) {
                assert_eq!(r.status, 200, "{what}: {}", r.text());
            } else {
                assert_forbidden(&r, &format!("the {} role", g.read_role), &what);
            }
            let Some(Write(method, path, body, allowed)) = g.write else {
                continue;
            };
            let what = format!("{role} {method} {path} ({})", g.name);
            let r = call(&node, &t, method, path, Some(body(role))).await;
            if rank(role) >= rank(g.write_role) {
                assert!(
                    allowed.contains(&r.status),
                    "{what}: {} {}",
                    r.status,
                    r.text()
                );
            } else {
                // Every change needs editor first; some groups need more.
                let needed = if rank(role) < rank("editor") {
                    "editor"
                } else {
                    g.write_role
                };
                assert_forbidden(&r, &format!("the {needed} role"), &what);
            }
        }
    }
}

#[tokio::test]
async fn scoped_tokens_reach_only_their_groups() {
    let node = start("format_version: 1\n").await;
    let r = create_token(
        &node,
        None,
        json!({"name": "ops", "role": "admin", "scopes": ["tokens", "config"]}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["scopes"], json!(["config", "tokens"]));
    let id = r.json()["id"].as_str().unwrap().to_string();
    let scoped = r.json()["token"].as_str().unwrap().to_string();

    // In scope: configuration and tokens, reads and writes.
    assert_eq!(
        call(&node, &scoped, "GET", "/api/upstreams", None)
            .await
            .status,
        200
    );
    let r = call(
        &node,
        &scoped,
        "POST",
        "/api/upstreams",
        Some(json!({"name": "svc", "targets": [{"url": "http://127.0.0.1:9"}]})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        call(&node, &scoped, "GET", "/api/users", None).await.status,
        200
    );

    // Out of scope, whatever the role.
    let r = call(&node, &scoped, "GET", "/api/apps", None).await;
    assert_forbidden(&r, "`identities` scope", "reading apps");
    let r = call(&node, &scoped, "GET", "/api/audit", None).await;
    assert_forbidden(&r, "`audit` scope", "reading the audit log");
    let r = call(
        &node,
        &scoped,
        "POST",
        "/api/subscriptions/none/credit",
        Some(json!({"amount": "1"})),
    )
    .await;
    assert_forbidden(&r, "`billing` scope", "adding credit");

    // It grants only scopes it has, and never every group.
    let r = create_token(
        &node,
        Some(&scoped),
        json!({"name": "narrow", "scopes": ["config"]}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let narrow = r.json()["token"].as_str().unwrap().to_string();
    let r = call(&node, &narrow, "GET", "/api/tokens", None).await;
    assert_forbidden(&r, "`tokens` scope", "the narrower token");
    let r = create_token(
        &node,
        Some(&scoped),
        json!({"name": "wide", "scopes": ["config", "billing"]}),
    )
    .await;
    assert_forbidden(&r, "`billing`", "granting a scope it lacks");
    let r = create_token(&node, Some(&scoped), json!({"name": "all"})).await;
    assert_forbidden(&r, "scopes", "granting every group");

    // Unknown and empty scope lists are named.
    let r = create_token(
        &node,
        None,
        json!({"name": "x", "scopes": ["config", "everything"]}),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.text().contains("unknown scope `everything`"),
        "{}",
        r.text()
    );
    let r = create_token(&node, None, json!({"name": "x", "scopes": []})).await;
    assert_eq!(r.status, 422, "{}", r.text());

    // Listed with its scopes, and recorded in the audit log.
    let tokens = node.admin_get("/api/tokens").await.unwrap().json();
    let listed = tokens["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(listed["scopes"], json!(["config", "tokens"]));
    assert!(listed.get("secret_hash").is_none());
    let audit = node
        .admin_get("/api/audit?newest=true&limit=50")
        .await
        .unwrap()
        .json();
    let entry = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "token" && e["name"] == id.as_str())
        .unwrap()
        .clone();
    let after: Value = serde_json::from_str(entry["after"].as_str().unwrap()).unwrap();
    assert_eq!(after["scopes"], json!(["config", "tokens"]));
    assert_eq!(after["role"], "admin");
}

#[tokio::test]
async fn expired_and_revoked_tokens_are_refused() {
    let node = start("format_version: 1\n").await;
    let r = create_token(
        &node,
        None,
        json!({"name": "brief", "role": "viewer", "expires_in": 1}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(r.json()["expires_at"].is_string());
    let brief = r.json()["token"].as_str().unwrap().to_string();
    assert_eq!(
        call(&node, &brief, "GET", "/api/upstreams", None)
            .await
            .status,
        200
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = call(&node, &brief, "GET", "/api/upstreams", None).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.json()["detail"], "this admin token has expired");

    let r = create_token(&node, None, json!({"name": "gone", "role": "editor"})).await;
    let id = r.json()["id"].as_str().unwrap().to_string();
    let gone = r.json()["token"].as_str().unwrap().to_string();
    assert_eq!(
        call(&node, &gone, "GET", "/api/upstreams", None)
            .await
            .status,
        200
    );
    let r = node
        .admin_request("DELETE", &format!("/api/tokens/{id}"), &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    let r = call(&node, &gone, "GET", "/api/upstreams", None).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.json()["detail"], "invalid admin token");
}

const TEAMS: &str = r#"
format_version: 1
upstreams:
  - name: svc
    targets: [{ url: "http://127.0.0.1:9" }]
apis:
  - name: orders
    team: payments
    versions:
      - { version: v1, upstream: svc, routes: [{ path: /orders }] }
  - name: people
    team: identity
    versions:
      - { version: v1, upstream: svc, routes: [{ path: /people }] }
"#;

#[tokio::test]
async fn a_team_changes_only_its_own_apis() {
    let node = start(TEAMS).await;
    let payments = token(
        &node,
        json!({"name": "payments", "role": "editor", "team": "payments"}),
    )
    .await;

    // Its own API and version.
    let r = call(
        &node,
        &payments,
        "PUT",
        "/api/apis/orders/versions/v1",
        Some(json!({"version": "v1", "upstream": "svc", "routes": [{"path": "/orders/v1"}]})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(
        &node,
        &payments,
        "POST",
        "/api/apis",
        Some(json!({"name": "refunds", "team": "payments"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());

    // Another team's API, a global policy, an API for another team, moving its own out:
    // refused, nothing written.
    let before = revision(&node).await;
    let r = call(
        &node,
        &payments,
        "PUT",
        "/api/apis/people",
        Some(json!({"name": "people", "title": "Taken over", "team": "identity"})),
    )
    .await;
    assert_forbidden(&r, "team `identity`", "another team's API");
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap()
            .contains("API `people`")
    );
    let r = call(
        &node,
        &payments,
        "PUT",
        "/api/apis/people/versions/v1",
        Some(json!({"version": "v1", "upstream": "svc", "routes": [{"path": "/mine"}]})),
    )
    .await;
    assert_forbidden(&r, "`people@v1`", "another team's version");
    let r = call(
        &node,
        &payments,
        "POST",
        "/api/policies",
        Some(json!({"ip_restrict": {"deny": ["203.0.113.0/24"]}})),
    )
    .await;
    assert_forbidden(&r, "policy `ip_restrict`", "a global policy");
    let r = call(
        &node,
        &payments,
        "POST",
        "/api/apis",
        Some(json!({"name": "theirs", "team": "identity"})),
    )
    .await;
    assert_forbidden(
        &r,
        "would belong to team `identity`",
        "an API for another team",
    );
    let r = call(
        &node,
        &payments,
        "PUT",
        "/api/apis/orders",
        Some(json!({"name": "orders", "team": "identity"})),
    )
    .await;
    assert_forbidden(&r, "would belong to team `identity`", "moving an API out");
    let r = call(
        &node,
        &payments,
        "POST",
        "/api/developers",
        Some(json!({"email": "dev@example.com"})),
    )
    .await;
    assert_forbidden(&r, "without a team", "a developer");
    let r = call(
        &node,
        &payments,
        "POST",
        "/api/subscriptions/none/credit",
        Some(json!({"amount": "1"})),
    )
    .await;
    assert_forbidden(&r, "without a team", "adding credit");

    // A whole document that changes its API and another team's is refused whole.
    let mixed = "format_version: 1\napis:\n  - name: orders\n    team: payments\n    title: Mine\n  - name: people\n    team: identity\n    title: Theirs\n";
    let bearer = format!("Bearer {payments}");
    let r = Client::new()
        .request(
            "PUT",
            &node.admin_url("/api/config"),
            &[
                ("authorization", bearer.as_str()),
                ("content-type", "application/yaml"),
            ],
            mixed,
        )
        .await
        .unwrap();
    assert_forbidden(&r, "team `identity`", "a mixed document");
    assert_eq!(
        revision(&node).await,
        before,
        "a refused change writes nothing"
    );
    let orders = node.admin_get("/api/apis/orders").await.unwrap().json();
    assert!(orders.get("title").is_none(), "{orders}");
    assert_eq!(orders["team"], "payments");

    // Reading stays open.
    assert_eq!(
        call(&node, &payments, "GET", "/api/apis/people", None)
            .await
            .status,
        200
    );

    // A principal without a team changes anything.
    let anyone = token(&node, json!({"name": "anyone", "role": "editor"})).await;
    let r = call(
        &node,
        &anyone,
        "PUT",
        "/api/apis/people",
        Some(json!({"name": "people", "title": "Shared", "team": "identity"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(
        &node,
        &anyone,
        "POST",
        "/api/policies",
        Some(json!({"ip_restrict": {"deny": ["203.0.113.0/24"]}})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
}

#[tokio::test]
async fn a_team_admin_makes_tokens_and_users_of_its_team_only() {
    let node = start(TEAMS).await;
    let lead = token(
        &node,
        json!({"name": "lead", "role": "admin", "team": "payments"}),
    )
    .await;
    let r = create_token(
        &node,
        Some(&lead),
        json!({"name": "no team", "role": "editor"}),
    )
    .await;
    assert_forbidden(&r, "team `payments`", "a token without a team");
    let r = create_token(
        &node,
        Some(&lead),
        json!({"name": "other", "role": "editor", "team": "identity"}),
    )
    .await;
    assert_forbidden(&r, "team `payments`", "a token of another team");
    let r = create_token(
        &node,
        Some(&lead),
        json!({"name": "mine", "role": "editor", "team": "payments"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["team"], "payments");
    let mine = r.json()["id"].as_str().unwrap().to_string();
    let listed = node.admin_get("/api/tokens").await.unwrap().json();
    assert!(
        listed["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == mine.as_str() && t["team"] == "payments"),
        "{listed}"
    );

    // A team token revokes only its team's tokens.
    let outsider = create_token(&node, None, json!({"name": "outsider", "role": "viewer"})).await;
    let outsider = outsider.json()["id"].as_str().unwrap().to_string();
    let r = call(
        &node,
        &lead,
        "DELETE",
        &format!("/api/tokens/{outsider}"),
        None,
    )
    .await;
    assert_forbidden(&r, "team `payments`", "revoking a token without a team");
    let r = call(&node, &lead, "DELETE", &format!("/api/tokens/{mine}"), None).await;
    assert_eq!(r.status, 204, "{}", r.text());

    let user = |email: &str, team: Option<&str>| {
        let mut u =
            json!({"email": email, "password": "a long enough passphrase 42", "role": "editor"});
        if let Some(t) = team {
            u["team"] = json!(t);
        }
        u
    };
    let r = call(
        &node,
        &lead,
        "POST",
        "/api/users",
        Some(user("a@example.com", None)),
    )
    .await;
    assert_forbidden(&r, "team `payments`", "a user without a team");
    let r = call(
        &node,
        &lead,
        "POST",
        "/api/users",
        Some(user("b@example.com", Some("payments"))),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["team"], "payments");
    let r = call(
        &node,
        &lead,
        "PATCH",
        "/api/users/b@example.com",
        Some(json!({"team": ""})),
    )
    .await;
    assert_forbidden(&r, "team `payments`", "taking a user out of the team");

    // A principal without a team sets and clears teams.
    let r = node
        .admin_request(
            "PATCH",
            "/api/users/b@example.com",
            &[("content-type", "application/json")],
            json!({"team": ""}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["team"].is_null(), "{}", r.text());
    let r = node
        .admin_request(
            "POST",
            "/api/users",
            &[("content-type", "application/json")],
            user("c@example.com", Some(" bad")).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 422, "{}", r.text());
}
