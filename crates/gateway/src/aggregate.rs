//! `aggregate`: one client call answered by several upstream calls. Steps without
//! dependencies run in parallel; a step whose path uses a field of an earlier step's
//! answer runs after it. JSON answers merge into one object or sit under keys.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, Uri, Version};
use http_body_util::{BodyExt, Limited};
use serde_json::{Map, Value};
use tollgate_model::UpstreamProtocol;
use tollgate_model::policy::{Aggregate, MergeMode};

use crate::body::{ProxyBody, empty, full};
use crate::transform::{get, render};
use crate::upstream::UpstreamPool;

/// Largest answer read from one part.
const MAX_PART_BODY: usize = 8 << 20;

pub static X_TOLLGATE_PARTIAL: http::HeaderName =
    http::HeaderName::from_static("x-tollgate-partial");

#[derive(Debug)]
struct Step {
    name: String,
    key: String,
    pool: Arc<UpstreamPool>,
    path: String,
    timeout: Duration,
    optional: bool,
    /// Earlier steps this one reads fields from.
    deps: Vec<usize>,
    /// Position in the execution order: 0 runs first.
    wave: usize,
}

#[derive(Debug)]
pub struct CompiledAggregate {
    merge: MergeMode,
    steps: Vec<Step>,
    waves: usize,
}

type PartFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = (usize, Result<Value, String>)> + Send + 'a>,
>;

/// Why an aggregate could not answer.
#[derive(Debug)]
pub struct AggregateFailure {
    pub step: String,
    pub reason: String,
}

impl CompiledAggregate {
    pub fn compile(
        a: &Aggregate,
        pool_of: impl Fn(&str) -> Option<Arc<UpstreamPool>>,
    ) -> Result<CompiledAggregate, String> {
        let mut steps: Vec<Step> = Vec::new();
        for s in &a.steps {
            let pool =
                pool_of(&s.upstream).ok_or_else(|| format!("unknown upstream `{}`", s.upstream))?;
            let placeholders = tollgate_model::policy::placeholders(&s.path)?;
            let deps: Vec<usize> = placeholders
                .iter()
                .filter_map(|p| p.split_once('.').map(|(step, _)| step))
                .filter_map(|name| steps.iter().position(|e| e.name == name))
                .collect();
            let wave = deps.iter().map(|&d| steps[d].wave + 1).max().unwrap_or(0);
            steps.push(Step {
                name: s.name.clone(),
                key: s.key.clone().unwrap_or_else(|| s.name.clone()),
                timeout: s.timeout.map(|t| t.as_std()).unwrap_or(pool.read_timeout),
                pool,
                path: s.path.clone(),
                optional: s.optional,
                deps,
                wave,
            });
        }
        let waves = steps.iter().map(|s| s.wave + 1).max().unwrap_or(0);
        Ok(CompiledAggregate {
            merge: a.merge,
            steps,
            waves,
        })
    }

    /// Runs the steps and builds the merged answer.
    pub async fn run(
        &self,
        params: &[(&str, String)],
        headers: &HeaderMap,
    ) -> Result<Response<ProxyBody>, AggregateFailure> {
        let mut results: Vec<Option<Value>> = vec![None; self.steps.len()];
        let mut missing: Vec<&str> = Vec::new();
        for wave in 0..self.waves {
            // A plain loop (not an iterator closure) keeps the future provably `Send`.
            let mut runs: Vec<PartFuture<'_>> = Vec::new();
            for (i, step) in self
                .steps
                .iter()
                .enumerate()
                .filter(|(_, s)| s.wave == wave)
            {
                let ready = step.deps.iter().all(|&d| results[d].is_some());
                let path = render(&step.path, |name| {
                    lookup(name, params, &self.steps, &results)
                });
                runs.push(Box::pin(async move {
                    let outcome = if ready {
                        call(step, &path, headers).await
                    } else {
                        Err("a step it depends on failed".to_string())
                    };
                    (i, outcome)
                }));
            }
            for (i, outcome) in futures_util::future::join_all(runs).await {
                let step = &self.steps[i];
                match outcome {
                    Ok(v) => results[i] = Some(v),
                    Err(reason) if step.optional => {
                        tracing::debug!(step = %step.name, %reason, "optional aggregate part failed");
                        missing.push(&step.name);
                    }
                    Err(reason) => {
                        return Err(AggregateFailure {
                            step: step.name.clone(),
                            reason,
                        });
                    }
                }
            }
        }
        let merged = self.merge_parts(results);
        let mut resp = Response::new(full(Bytes::from(merged.to_string())));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if !missing.is_empty()
            && let Ok(v) = HeaderValue::from_str(&missing.join(", "))
        {
            resp.headers_mut().insert(X_TOLLGATE_PARTIAL.clone(), v);
        }
        Ok(resp)
    }

    fn merge_parts(&self, results: Vec<Option<Value>>) -> Value {
        let mut out = Map::new();
        for (step, value) in self.steps.iter().zip(results) {
            let Some(value) = value else { continue };
            match (self.merge, value) {
                (MergeMode::Object, Value::Object(map)) => deep_merge(&mut out, map),
                (_, value) => {
                    out.insert(step.key.clone(), value);
                }
            }
        }
        Value::Object(out)
    }
}

fn deep_merge(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(Value::Object(a)), Value::Object(b)) => deep_merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// A placeholder's value: a route parameter, or a field of an earlier step's answer
/// (percent-encoded for use in a path or query).
fn lookup(
    name: &str,
    params: &[(&str, String)],
    steps: &[Step],
    results: &[Option<Value>],
) -> Option<String> {
    match name.split_once('.') {
        None => params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone()),
        Some((step, field)) => {
            let i = steps.iter().position(|s| s.name == step)?;
            let v = get(results[i].as_ref()?, field)?;
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Null => return None,
                other => other.to_string(),
            };
            Some(
                percent_encoding::utf8_percent_encode(&text, percent_encoding::NON_ALPHANUMERIC)
                    .to_string(),
            )
        }
    }
}

/// Headers a part inherits from the client's request.
const FORWARDED: &[header::HeaderName] = &[
    header::ACCEPT_LANGUAGE,
    header::AUTHORIZATION,
    header::USER_AGENT,
];

async fn call(step: &Step, path: &str, client: &HeaderMap) -> Result<Value, String> {
    let pool = &step.pool;
    let index = pool
        .balancer
        .pick(&pool.targets, &[], None, pool.cooldown)
        .ok_or("no healthy target")?;
    let target = &pool.targets[index];
    let uri = Uri::builder()
        .scheme(target.scheme.clone())
        .authority(target.authority.clone())
        .path_and_query(path)
        .build()
        .map_err(|e| format!("bad path `{path}`: {e}"))?;
    let mut req = Request::new(empty());
    *req.method_mut() = Method::GET;
    *req.uri_mut() = uri;
    *req.version_mut() = if pool.protocol == UpstreamProtocol::H2c {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    for name in FORWARDED.iter().chain([
        &crate::forward::X_REQUEST_ID,
        &crate::forward::TRACEPARENT,
        &crate::forward::X_FORWARDED_FOR,
    ]) {
        if let Some(v) = client.get(name) {
            req.headers_mut().insert(name.clone(), v.clone());
        }
    }
    req.headers_mut()
        .insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    req.headers_mut()
        .insert(header::HOST, target.host_header.clone());
    let work = async {
        let resp = pool.client().request(req).await.map_err(|e| {
            target.record_failure(pool.passive_threshold);
            if e.is_connect() {
                "upstream unreachable".to_string()
            } else {
                "upstream failed".to_string()
            }
        })?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_PART_BODY)
            .collect()
            .await
            .map_err(|_| "answer unreadable or too large".to_string())?
            .to_bytes();
        if !status.is_success() {
            if matches!(status.as_u16(), 502..=504) {
                target.record_failure(pool.passive_threshold);
            }
            return Err(format!("upstream answered {}", status.as_u16()));
        }
        target.record_success();
        serde_json::from_slice::<Value>(&body).map_err(|_| "answer is not JSON".to_string())
    };
    match tokio::time::timeout(step.timeout, work).await {
        Ok(result) => result,
        Err(_) => {
            target.record_failure(pool.passive_threshold);
            Err(format!("no answer within {:?}", step.timeout))
        }
    }
}
