//! `apply` and `export`: talking to a running node's admin API.

use std::path::Path;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use tollgate_model::Document;

use crate::{Failure, configfile};

#[derive(clap::Args)]
pub struct RemoteArgs {
    /// Admin API address.
    #[arg(
        long,
        env = "TOLLGATE_ADMIN_URL",
        default_value = "http://127.0.0.1:8001"
    )]
    admin_url: String,
    /// Admin token (bearer).
    #[arg(long, env = "TOLLGATE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
}

struct Answer {
    status: StatusCode,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The failure to report for a non-success answer.
    fn failure(&self) -> Failure {
        let problem = self.json();
        let detail = problem["detail"].as_str().unwrap_or("").to_string();
        match self.status {
            StatusCode::UNAUTHORIZED => Failure::Runtime(format!(
                "the admin API refused the token ({detail}); set TOLLGATE_ADMIN_TOKEN or --admin-token"
            )),
            StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => {
                let mut lines = vec![format!("rejected: {detail}")];
                for e in problem["errors"].as_array().into_iter().flatten() {
                    lines.push(format!(
                        "  {}: {}",
                        e["path"].as_str().unwrap_or(""),
                        e["message"].as_str().unwrap_or("")
                    ));
                }
                lines.push("nothing applied".into());
                Failure::Invalid(lines.join("\n"))
            }
            s => Failure::Runtime(format!("admin API answered {s}: {detail}")),
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(format!("cannot start: {e}")))
}

async fn call(
    remote: &RemoteArgs,
    method: Method,
    path: &str,
    headers: &[(&str, String)],
    body: Bytes,
) -> Result<Answer, Failure> {
    let token = remote
        .admin_token
        .as_deref()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Failure::Invalid(
                "no admin token: set TOLLGATE_ADMIN_TOKEN or pass --admin-token".into(),
            )
        })?;
    let url = format!("{}{path}", remote.admin_url.trim_end_matches('/'));
    let mut req = Request::builder()
        .method(method)
        .uri(&url)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::new(body))
        .map_err(|e| Failure::Invalid(format!("bad admin URL `{url}`: {e}")))?;
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            header::HeaderValue::from_str(value),
        ) {
            req.headers_mut().insert(n, v);
        }
    }
    let client = Client::builder(TokioExecutor::new()).build_http();
    let resp = tokio::time::timeout(std::time::Duration::from_secs(120), client.request(req))
        .await
        .map_err(|_| {
            Failure::Runtime(format!(
                "the admin API at {} did not answer in time",
                remote.admin_url
            ))
        })?
        .map_err(|e| {
            Failure::Runtime(format!(
                "cannot reach the admin API at {}: {e}",
                remote.admin_url
            ))
        })?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| Failure::Runtime(format!("reading the admin API's answer: {e}")))?
        .to_bytes();
    Ok(Answer { status, body })
}

fn print_plan(outcome: &Value) {
    let changes = outcome["plan"]["changes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for c in &changes {
        let sign = match c["op"].as_str() {
            Some("create") => "+",
            Some("update") => "~",
            Some("delete") => "-",
            _ => "?",
        };
        println!(
            "{sign} {} {} {}",
            c["op"].as_str().unwrap_or(""),
            c["kind"].as_str().unwrap_or(""),
            c["name"].as_str().unwrap_or("")
        );
    }
    println!("plan: {}", outcome["summary"].as_str().unwrap_or(""));
}

pub fn apply(file: &Path, dry_run: bool, prune: bool, remote: &RemoteArgs) -> Result<(), Failure> {
    runtime()?.block_on(async {
        // Check the file against what the node serves, so errors point into the file.
        let stored = if prune {
            None
        } else {
            let current = call(
                remote,
                Method::GET,
                "/api/config?format=json",
                &[],
                Bytes::new(),
            )
            .await?;
            if !current.status.is_success() {
                return Err(current.failure());
            }
            Some(
                serde_json::from_slice::<Document>(&current.body).map_err(|e| {
                    Failure::Runtime(format!("the node's configuration could not be read: {e}"))
                })?,
            )
        };
        let doc = configfile::load(file, stored.as_ref())?;
        let body =
            Bytes::from(serde_json::to_vec(&doc).map_err(|e| Failure::Runtime(e.to_string()))?);
        let query = format!("/api/config?dry_run=true&prune={prune}");
        let ct = [("content-type", "application/json".to_string())];
        let planned = call(remote, Method::PUT, &query, &ct, body.clone()).await?;
        if !planned.status.is_success() {
            return Err(planned.failure());
        }
        let plan = planned.json();
        print_plan(&plan);
        let changes = plan["plan"]["changes"].as_array().map_or(0, Vec::len);
        if dry_run {
            println!("dry run: nothing applied");
            return Ok(());
        }
        if changes == 0 {
            println!("nothing to apply (revision {})", plan["revision"]);
            return Ok(());
        }
        let base = plan["base_revision"].as_i64().unwrap_or(0);
        let headers = [ct[0].clone(), ("if-match", format!("\"{base}\""))];
        let applied = call(
            remote,
            Method::PUT,
            &format!("/api/config?prune={prune}"),
            &headers,
            body,
        )
        .await?;
        if applied.status == StatusCode::PRECONDITION_FAILED {
            return Err(Failure::Runtime(
                "the configuration changed while applying; run apply again to re-plan".into(),
            ));
        }
        if !applied.status.is_success() {
            return Err(applied.failure());
        }
        println!("applied: revision {}", applied.json()["revision"]);
        Ok(())
    })
}

/// `export`: the node's configuration (or, with `file`, a configuration file's) as YAML,
/// JSON, or Kong decK 3.0 (`kong`).
pub fn export(
    output: Option<&Path>,
    format: &str,
    file: Option<&Path>,
    allow_unsupported: bool,
    remote: &RemoteArgs,
) -> Result<(), Failure> {
    if !matches!(format, "yaml" | "json" | "kong") {
        return Err(Failure::Invalid(format!(
            "unknown format `{format}`: use yaml, json or kong"
        )));
    }
    let body: Vec<u8> = match file {
        Some(path) => {
            let doc = configfile::load(path, None)?;
            match format {
                "kong" => kong(&doc, &path.display().to_string(), allow_unsupported)?,
                "json" => {
                    serde_json::to_vec_pretty(&doc).map_err(|e| Failure::Runtime(e.to_string()))?
                }
                _ => yaml_serde::to_string(&doc)
                    .map_err(|e| Failure::Runtime(e.to_string()))?
                    .into_bytes(),
            }
        }
        None => runtime()?.block_on(async {
            let asked = if format == "kong" { "json" } else { format };
            let answer = call(
                remote,
                Method::GET,
                &format!("/api/config?format={asked}"),
                &[],
                Bytes::new(),
            )
            .await?;
            if !answer.status.is_success() {
                return Err(answer.failure());
            }
            if format != "kong" {
                return Ok(answer.body.to_vec());
            }
            let doc: Document = serde_json::from_slice(&answer.body).map_err(|e| {
                Failure::Runtime(format!("the node's configuration could not be read: {e}"))
            })?;
            kong(&doc, "the node's configuration", allow_unsupported)
        })?,
    };
    match output {
        Some(path) => std::fs::write(path, &body)
            .map_err(|e| Failure::Runtime(format!("cannot write {}: {e}", path.display())))?,
        None => {
            use std::io::Write;
            std::io::stdout()
                .write_all(&body)
                .map_err(|e| Failure::Runtime(format!("cannot write the export: {e}")))?;
        }
    }
    Ok(())
}

/// The configuration as decK 3.0 YAML; what Kong cannot express is listed, and refused
/// unless `allow_unsupported`.
fn kong(doc: &Document, source: &str, allow_unsupported: bool) -> Result<Vec<u8>, Failure> {
    let (value, report) = tollgate_import::kong::export(doc)
        .map_err(|e| Failure::Invalid(format!("{source}: {e}")))?;
    for n in &report.notes {
        eprintln!("note: {n}");
    }
    for u in &report.unsupported {
        eprintln!("unsupported: {u}");
    }
    if !report.unsupported.is_empty() && !allow_unsupported {
        return Err(Failure::Invalid(format!(
            "{source}: not exported: {} element(s) above have no Kong equivalent (--allow-unsupported writes the rest)",
            report.unsupported.len()
        )));
    }
    eprintln!(
        "exported {source} for Kong: {}{}",
        report.summary(),
        if report.unsupported.is_empty() {
            String::new()
        } else {
            format!("; {} element(s) not exported", report.unsupported.len())
        }
    );
    Ok(tollgate_import::kong::to_yaml(&value).into_bytes())
}
