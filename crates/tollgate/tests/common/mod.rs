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
