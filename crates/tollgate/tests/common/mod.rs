//! Shared helpers for the end-to-end tests: the binary under test and small config
//! builders. Every test starts its own node and mock upstreams on ephemeral ports.

#![allow(dead_code, unused_imports)]

use std::path::Path;

pub use tollgate_testkit::{
    Client, Hook, HookReceiver, MockUpstream, Node, NodeOptions, Reply, admin_put_yaml, wait_until,
};

pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tollgate"))
}

/// An upstream block with the given targets and extra YAML lines (indented 4).
pub fn upstream(name: &str, targets: &[String], extra: &str) -> String {
    let mut out = format!("  - name: {name}\n    targets:\n");
    for t in targets {
        out.push_str(&format!("      - url: \"{t}\"\n"));
    }
    for line in extra.lines().filter(|l| !l.trim().is_empty()) {
        out.push_str(&format!("    {line}\n"));
    }
    out
}

/// A one-version API whose routes are given as YAML flow items.
pub fn api(name: &str, upstream: &str, routes: &[&str]) -> String {
    let mut out = format!(
        "  - name: {name}\n    versions:\n      - version: v1\n        upstream: {upstream}\n        routes:\n"
    );
    for r in routes {
        out.push_str(&format!("          - {r}\n"));
    }
    out
}

pub fn config(upstreams: &[String], apis: &[String]) -> String {
    format!(
        "format_version: 1\nupstreams:\n{}apis:\n{}",
        upstreams.concat(),
        apis.concat()
    )
}

pub async fn start(yaml: &str) -> Node {
    Node::start(bin(), Some(yaml)).await.expect("node starts")
}

pub async fn start_with(opts: NodeOptions) -> Node {
    Node::start_with(bin(), opts).await.expect("node starts")
}

/// Which mock answered (the echo body names it).
pub fn served_by(reply: &Reply) -> String {
    reply.json()["upstream"].as_str().unwrap_or("?").to_string()
}

/// Runs the CLI with the node's admin URL and token; returns (exit code, stdout, stderr).
pub fn cli(node: &Node, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(bin())
        .args(args)
        .env("TOLLGATE_ADMIN_URL", node.admin_url(""))
        .env("TOLLGATE_ADMIN_TOKEN", &node.token)
        .output()
        .expect("cli runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fresh schema and the URL that selects it, or None when skipped.
pub fn schema_url(name: &str) -> Option<String> {
    let base = std::env::var("TOLLGATE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("e2e_{name}_{}", std::process::id());
    let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};");
    let ok = std::process::Command::new("psql")
        .args([base.as_str(), "-q", "-c", &sql])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("PostgreSQL at {base} is required under CI=true");
        }
        eprintln!("skipping {name}: PostgreSQL at {base} unreachable (or psql missing)");
        return None;
    }
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
}

/// A TCP relay to PostgreSQL that a test can cut (closing every relayed connection) and
/// restore on the same port: the store becoming unreachable and coming back.
pub struct Relay {
    pub addr: std::net::SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Relay {
    pub async fn start(addr: std::net::SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                conns.spawn(async move {
                    if let Ok(mut pg) = tokio::net::TcpStream::connect("127.0.0.1:5432").await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut pg).await;
                    }
                });
            }
        });
        Relay {
            addr,
            task: Some(task),
        }
    }

    /// Stops accepting and drops every relayed connection (the JoinSet aborts them).
    pub fn cut(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}
