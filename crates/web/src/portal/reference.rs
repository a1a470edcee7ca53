//! The API reference of a version and its try-it console.

use super::*;

// ---- API reference and try-it ----

#[derive(Template)]
#[template(path = "portal/reference.html")]
pub(super) struct ReferencePage {
    f: Frame,
    title: String,
    version: String,
    status: String,
    badge: &'static str,
    notice: String,
    description: String,
    operations: Vec<Operation>,
    gateway: String,
    key_header: String,
    signed_in: bool,
}

/// The header an API key is sent in for a version: its `key_auth` policy's, else the
/// API's or the global one's, else the default.
pub(super) fn key_header(
    doc: &Document,
    api: &tollgate_model::Api,
    v: &tollgate_model::Version,
) -> String {
    let find = |list: &[tollgate_model::Policy]| {
        list.iter().find_map(|p| match p {
            tollgate_model::Policy::KeyAuth(k) => Some(k.header.clone()),
            _ => None,
        })
    };
    v.routes
        .iter()
        .find_map(|r| find(&r.policies))
        .or_else(|| find(&v.policies))
        .or_else(|| find(&api.policies))
        .or_else(|| find(&doc.policies))
        .unwrap_or_else(|| "x-api-key".to_string())
}

pub(super) async fn reference(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Path((api_name, version)): Path<(String, String)>,
) -> Response {
    let dev = current_dev(&web, &headers, &ip).await;
    let doc = match document(&web).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let found = doc
        .apis
        .iter()
        .filter(|a| a.visibility == tollgate_model::Visibility::Public)
        .find(|a| a.name == api_name)
        .and_then(|a| {
            a.versions
                .iter()
                .find(|v| v.version == version)
                .map(|v| (a, v))
        })
        .filter(|(_, v)| matches!(status_of(v).as_str(), "published" | "deprecated"));
    let Some((api, v)) = found else {
        return not_found(State(web), ip, headers).await;
    };
    let parsed = v.spec.as_deref().and_then(openapi::parse);
    let operations = match &parsed {
        Some(spec) => openapi::operations(spec),
        None => openapi::from_routes(v),
    };
    let description = parsed
        .as_ref()
        .and_then(|s| s.pointer("/info/description"))
        .and_then(Value::as_str)
        .or(api.description.as_deref())
        .unwrap_or("")
        .to_string();
    let status = status_of(v);
    let notice = if status == "deprecated" {
        let mut n = format!("{} {} is deprecated", api.name, v.version);
        if let Some(s) = &v.sunset_at {
            n.push_str(&format!(" and stops working on {}", short_time(s)));
        }
        if let Some(s) = &v.successor {
            n.push_str(&format!(": move to {s}"));
        }
        n.push('.');
        n
    } else {
        String::new()
    };
    ok(&ReferencePage {
        f: Frame::new(
            &format!("{} {}", api.name, v.version),
            "catalog",
            dev.as_ref(),
            Flash::default(),
        ),
        title: api.title.clone().unwrap_or_else(|| api.name.clone()),
        version: v.version.clone(),
        badge: status_badge(&status),
        status,
        notice,
        description,
        operations,
        gateway: web.settings.public_gateway_url.clone(),
        key_header: key_header(&doc, api, v),
        signed_in: dev.is_some(),
    })
}

#[derive(Deserialize)]
pub(super) struct TryForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    query: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    key_header: String,
}

#[derive(Template)]
#[template(path = "portal/try_result.html")]
pub(super) struct TryResult {
    status: String,
    badge: &'static str,
    elapsed: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// Largest response body the console shows.
pub(super) const MAX_TRY_BODY: usize = 256 * 1024;

pub(super) fn try_error(message: &str) -> Response {
    ok(&TryResult {
        status: message.to_string(),
        badge: "bad",
        elapsed: String::new(),
        headers: Vec::new(),
        body: String::new(),
    })
}

/// The try-it console: sends one request through this node's gateway, with the key the
/// developer typed, and shows the answer. Only paths on the gateway can be called.
pub(super) async fn try_it(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Form(f): Form<TryForm>,
) -> Response {
    let Some(dev) = current_dev(&web, &headers, &ip).await else {
        return (StatusCode::UNAUTHORIZED, "sign in to use the console").into_response();
    };
    if let Err(r) = check_csrf(&dev, &f.csrf) {
        return r;
    }
    let Ok(method) = Method::from_bytes(f.method.trim().to_ascii_uppercase().as_bytes()) else {
        return try_error("Unknown method");
    };
    let path = f.path.trim();
    if !path.starts_with('/')
        || path.starts_with("//")
        || path.len() > 2048
        || path.contains(['\r', '\n', ' ', '#'])
    {
        return try_error("The path must start with / and contain no spaces");
    }
    let query = f.query.trim().trim_start_matches('?');
    let uri = if query.is_empty() {
        format!("{}{path}", web.settings.gateway_url)
    } else {
        format!("{}{path}?{query}", web.settings.gateway_url)
    };
    let mut req = http::Request::builder().method(method.clone()).uri(&uri);
    let key = f.key.trim();
    if !key.is_empty() {
        let name = if f.key_header.trim().is_empty() {
            "x-api-key"
        } else {
            f.key_header.trim()
        };
        req = req.header(name, key);
    }
    req = req.header("x-forwarded-for", ip.0.as_str());
    let body = if f.body.trim().is_empty() || matches!(method, Method::GET | Method::HEAD) {
        Bytes::new()
    } else {
        req = req.header(header::CONTENT_TYPE, "application/json");
        Bytes::from(f.body.clone())
    };
    let Ok(req) = req.body(Full::new(body)) else {
        return try_error("That request cannot be sent: check the path, query and key");
    };
    let started = std::time::Instant::now();
    let resp = match tokio::time::timeout(Duration::from_secs(30), web.http.request(req)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return try_error(&format!("The gateway could not be reached: {e}")),
        Err(_) => return try_error("No answer within 30 seconds"),
    };
    let status = resp.status();
    let shown: Vec<(String, String)> = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("(binary)").to_string()))
        .collect();
    let bytes = Limited::new(resp.into_body(), MAX_TRY_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_else(|_| Bytes::from_static(b"(the body is larger than the console shows)"));
    let text = String::from_utf8_lossy(&bytes).to_string();
    let body = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(text);
    ok(&TryResult {
        status: status.to_string(),
        badge: if status.is_success() {
            "ok"
        } else if status.is_client_error() {
            "warn"
        } else {
            "bad"
        },
        elapsed: format!("{:.0} ms", started.elapsed().as_secs_f64() * 1000.0),
        headers: shown,
        body,
    })
}
