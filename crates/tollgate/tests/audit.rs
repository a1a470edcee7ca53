//! The audit log through the binary: each change through the admin API recorded with the
//! token, the client address and the entity before and after; listed and exported for the
//! admin role only; and `tollgate audit verify` detecting an entry edited in the database.

mod common;
use common::*;

use std::process::Command;

use serde_json::json;

#[tokio::test]
async fn changes_are_audited_and_tampering_is_detected() {
    let m = MockUpstream::start("svc").await;
    let node = start(&config(
        &[upstream("svc", &[m.url()], "")],
        &[api("orders", "svc", &["{ path: /orders }"])],
    ))
    .await;
    let json_ct = [("content-type", "application/json")];

    // A change through the API: recorded with before and after.
    let r = node
        .admin_request(
            "PUT",
            "/api/upstreams/svc",
            &json_ct,
            json!({"name": "svc", "targets": [{"url": m.url()}], "retries": 3}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let r = node.admin_get("/api/audit").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let entries = r.json()["entries"].as_array().unwrap().clone();
    let last = entries.last().unwrap();
    assert_eq!(
        (
            last["kind"].as_str(),
            last["name"].as_str(),
            last["op"].as_str()
        ),
        (Some("upstream"), Some("svc"), Some("update"))
    );
    assert!(
        last["actor"].as_str().unwrap().starts_with("token:"),
        "{last}"
    );
    assert_eq!(last["source"], "127.0.0.1");
    assert!(!last["before"].as_str().unwrap().contains("retries"));
    assert!(last["after"].as_str().unwrap().contains("\"retries\":3"));
    // The configuration file applied at start is the node's own change.
    assert!(
        entries
            .iter()
            .any(|e| e["actor"] == "config-file" && e["source"] == "local"),
        "{entries:?}"
    );
    let r = node.admin_get("/api/audit/verify").await.unwrap();
    assert_eq!(r.json()["intact"], true, "{}", r.text());

    // Archiving: every entry as a JSON line.
    let r = node.admin_get("/api/audit?format=jsonl").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text().lines().count(), entries.len());

    // Only the admin role reads the audit log.
    let r = node
        .admin_request(
            "POST",
            "/api/tokens",
            &json_ct,
            json!({"name": "dash", "role": "editor"}).to_string(),
        )
        .await
        .unwrap();
    let editor = format!("Bearer {}", r.json()["token"].as_str().unwrap());
    let r = Client::new()
        .get_with(
            &node.admin_url("/api/audit"),
            &[("authorization", editor.as_str())],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.text());

    // Offline verification agrees; then someone edits an entry in the database itself.
    let dir = node.data_dir.to_str().unwrap().to_string();
    let verify = || {
        Command::new(bin())
            .args(["audit", "verify", "--data-dir", &dir])
            .output()
            .unwrap()
    };
    let o = verify();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("intact"));
    let edited = last["id"].as_i64().unwrap();
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        node.data_dir.join("tollgate.db").display()
    ))
    .await
    .unwrap();
    let refused = sqlx::query("UPDATE change_log SET actor = 'nobody'")
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("append-only"), "{refused}");
    sqlx::query("DROP TRIGGER change_log_no_update")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE change_log SET after_body = '{{}}' WHERE id = {edited}"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let o = verify();
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(&format!("entry {edited} ")) && stderr.contains("edited"),
        "{stderr}"
    );
    let r = node.admin_get("/api/audit/verify").await.unwrap();
    assert_eq!(r.json()["intact"], false, "{}", r.text());

    let o = Command::new(bin())
        .args(["audit", "verify", "--data-dir", "/nonexistent/tollgate"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no Tollgate database"));
}
