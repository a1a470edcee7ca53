//! The developer's apps: keys, subscriptions, usage, quota, invoices and notices.

use super::*;

// ---- apps ----

pub(super) struct MyApp {
    name: String,
    description: String,
    keys: usize,
    subscriptions: String,
}

#[derive(Template)]
#[template(path = "portal/apps.html")]
pub(super) struct AppsPage {
    f: Frame,
    apps: Vec<MyApp>,
    name: String,
    description: String,
    errors: HashMap<String, String>,
}

pub(super) async fn apps_page(
    web: &Web,
    dev: &Dev,
    flash: Flash,
    name: &str,
    description: &str,
    errors: HashMap<String, String>,
) -> Response {
    let doc = match document(web).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let apps = doc
        .apps
        .iter()
        .filter(|a| a.owner.eq_ignore_ascii_case(&dev.email))
        .map(|a| MyApp {
            name: a.name.clone(),
            description: a.description.clone().unwrap_or_default(),
            keys: a.keys.len(),
            subscriptions: doc
                .subscriptions
                .iter()
                .filter(|s| s.app == a.name)
                .map(|s| format!("{} · {} ({})", s.product, s.plan, s.status.as_str()))
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect();
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    page(
        status,
        &AppsPage {
            f: Frame::new("Your apps", "apps", Some(dev), flash),
            apps,
            name: name.to_string(),
            description: description.to_string(),
            errors,
        },
    )
}

pub(super) async fn apps(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Query(q): Query<MsgQuery>,
) -> Response {
    match require_dev(&web, &headers, &ip, "/apps").await {
        Ok(dev) => {
            apps_page(
                &web,
                &dev,
                Flash::from_code(q.msg.as_deref()),
                "",
                "",
                HashMap::new(),
            )
            .await
        }
        Err(r) => r,
    }
}

#[derive(Deserialize)]
pub(super) struct NewAppForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
}

pub(super) async fn create_app(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Form(f): Form<NewAppForm>,
) -> Response {
    let dev = match require_dev(&web, &headers, &ip, "/apps").await {
        Ok(d) => d,
        Err(r) => return r,
    };
    if let Err(r) = check_csrf(&dev, &f.csrf) {
        return r;
    }
    let name = f.name.trim().to_string();
    let mut errors = HashMap::new();
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric());
    if !valid {
        errors.insert(
            "name".to_string(),
            "use 1 to 64 letters, digits, - or _, starting with a letter or digit".to_string(),
        );
        return apps_page(
            &web,
            &dev,
            Flash::default(),
            &f.name,
            &f.description,
            errors,
        )
        .await;
    }
    let mut body = json!({ "name": name, "owner": dev.email });
    if !f.description.trim().is_empty() {
        body["description"] = json!(f.description.trim().chars().take(500).collect::<String>());
    }
    let answer = web
        .api
        .call(&dev.who, Method::POST, "/api/apps", Some(body))
        .await;
    if answer.ok() {
        return see_other(&format!("/apps/{}?msg=app-created", enc(&name)));
    }
    let mut errors = answer.field_errors();
    if answer.status == StatusCode::CONFLICT {
        errors.insert(
            "name".to_string(),
            "this name is taken: choose another".to_string(),
        );
    }
    errors.retain(|k, _| k == "name" || k == "description");
    let flash = if errors.is_empty() {
        Flash::error(answer.detail())
    } else {
        Flash::default()
    };
    apps_page(&web, &dev, flash, &f.name, &f.description, errors).await
}

pub(super) struct KeyRow {
    id: String,
    label: String,
    created: String,
    expires: String,
}

pub(super) struct SubView {
    product: String,
    plan: String,
    status: String,
    badge: &'static str,
    requests: String,
    quota: String,
    quota_pct: u64,
    has_quota: bool,
}

pub(super) struct PlanChoice {
    value: String,
    label: String,
}

pub(super) struct NoticeView {
    at: String,
    message: String,
}

#[derive(Template)]
#[template(path = "portal/app.html")]
pub(super) struct AppPage {
    f: Frame,
    app: String,
    description: String,
    keys: Vec<KeyRow>,
    new_secret: Option<String>,
    subs: Vec<SubView>,
    choices: Vec<PlanChoice>,
    requests_month: String,
    period: String,
    usage_series: String,
    invoices: Vec<InvoiceRow>,
    notices: Vec<NoticeView>,
    deprecated: Vec<String>,
    sub_error: Option<String>,
}

/// The app, if it belongs to the developer.
pub(super) fn own_app<'a>(
    doc: &'a Document,
    dev: &Dev,
    app: &str,
) -> Option<&'a tollgate_model::App> {
    doc.apps
        .iter()
        .find(|a| a.name == app && a.owner.eq_ignore_ascii_case(&dev.email))
}

pub(super) async fn app_view(
    web: &Web,
    dev: &Dev,
    app_name: &str,
    flash: Flash,
    new_secret: Option<String>,
    sub_error: Option<String>,
) -> Response {
    let doc = match document(web).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let Some(app) = own_app(&doc, dev, app_name) else {
        return see_other("/apps");
    };
    let period = this_month();
    let usage = web
        .api
        .get(
            &dev.who,
            &format!("/api/usage?app={}&period={period}", enc(app_name)),
        )
        .await;
    let used: HashMap<String, u64> = items(&usage.body, "subscriptions")
        .filter_map(|s| {
            Some((
                s.get("product")?.as_str()?.to_string(),
                s.get("requests")?.as_u64()?,
            ))
        })
        .collect();
    // Today's requests per subscription, for daily quotas.
    let now_minute = time::OffsetDateTime::now_utc().unix_timestamp() / 60;
    let today_start = now_minute - now_minute.rem_euclid(1440);
    let today: HashMap<String, u64> = web
        .admin
        .store
        .usage(&format!("{}:", app.name), today_start, now_minute + 1)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| Some((t.subscription.split_once(':')?.1.to_string(), t.requests)))
        .collect();
    let subs = doc
        .subscriptions
        .iter()
        .filter(|s| s.app == app.name)
        .map(|s| {
            let status = s.status.as_str().to_string();
            let requests = used.get(&s.product).copied().unwrap_or(0);
            let plan = doc
                .products
                .iter()
                .find(|p| p.name == s.product)
                .and_then(|p| p.plans.iter().find(|pl| pl.name == s.plan));
            let (quota, quota_pct) = match plan.and_then(|p| p.quota.as_ref()) {
                Some(q) => {
                    let period = serde_json::to_value(q.period)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    let used = if period == "day" {
                        today.get(&s.product).copied().unwrap_or(0)
                    } else {
                        requests
                    };
                    let pct = (used * 100).checked_div(q.limit).unwrap_or(0).min(100);
                    let when = if period == "day" {
                        "today"
                    } else {
                        "this month"
                    };
                    (
                        format!("{} of {} requests {when}", count(used), count(q.limit)),
                        pct,
                    )
                }
                None => ("no quota".to_string(), 0),
            };
            SubView {
                has_quota: plan.and_then(|p| p.quota.as_ref()).is_some(),
                product: s.product.clone(),
                plan: s.plan.clone(),
                badge: status_badge(&status),
                status,
                requests: count(requests),
                quota,
                quota_pct,
            }
        })
        .collect();
    let subscribed: Vec<&str> = doc
        .subscriptions
        .iter()
        .filter(|s| s.app == app.name && s.status != tollgate_model::SubscriptionStatus::Cancelled)
        .map(|s| s.product.as_str())
        .collect();
    let choices = doc
        .products
        .iter()
        .filter(|p| {
            p.visibility == tollgate_model::Visibility::Public
                && !subscribed.contains(&p.name.as_str())
        })
        .flat_map(|p| {
            p.plans.iter().map(move |pl| PlanChoice {
                value: format!("{}:{}", p.name, pl.name),
                label: format!(
                    "{} · {} — {}{}",
                    p.title.as_deref().unwrap_or(&p.name),
                    pl.title.as_deref().unwrap_or(&pl.name),
                    crate::dashboard::price_text(
                        &serde_json::to_value(&pl.price).unwrap_or_default()
                    ),
                    if pl.approval == tollgate_model::Approval::Manual {
                        " (needs approval)"
                    } else {
                        ""
                    }
                ),
            })
        })
        .collect();
    let mut invoices = Vec::new();
    for p in [period.clone(), previous_month(&period)] {
        let answer = web
            .api
            .get(&dev.who, &format!("/api/invoices?period={p}"))
            .await;
        invoices.extend(
            invoice_rows(&answer.body)
                .into_iter()
                .filter(|i| i.app == app.name),
        );
    }
    let notices = web
        .api
        .get(&dev.who, &format!("/api/notices?app={}", enc(&app.name)))
        .await;
    let notices = items(&notices.body, "notices")
        .take(20)
        .map(|n| NoticeView {
            at: short_time(&text(n, "created_at")),
            message: text(n, "message"),
        })
        .collect();
    // Deprecated versions this app called in the last 30 days.
    let mut deprecated = Vec::new();
    for a in &doc.apis {
        for v in a.versions.iter().filter(|v| status_of(v) == "deprecated") {
            let callers = web
                .api
                .get(
                    &dev.who,
                    &format!(
                        "/api/apis/{}/versions/{}/callers",
                        enc(&a.name),
                        enc(&v.version)
                    ),
                )
                .await;
            let calls = items(&callers.body, "callers")
                .any(|c| c.get("app").and_then(Value::as_str) == Some(app.name.as_str()));
            if calls {
                let mut text = format!(
                    "This app still calls {} {}, which is deprecated",
                    a.name, v.version
                );
                if let Some(s) = &v.sunset_at {
                    text.push_str(&format!(" and stops working on {}", short_time(s)));
                }
                if let Some(s) = &v.successor {
                    text.push_str(&format!(". Move to {s}"));
                }
                text.push('.');
                deprecated.push(text);
            }
        }
    }
    let base = format!("/apps/{}/usage", enc(&app.name));
    let usage_series = json!([
        { "label": "Requests", "url": format!("{base}?metric=requests") },
        { "label": "Errors", "url": format!("{base}?metric=errors") },
    ])
    .to_string();
    ok(&AppPage {
        f: Frame::new(&app.name, "apps", Some(dev), flash),
        app: app.name.clone(),
        description: app.description.clone().unwrap_or_default(),
        keys: app
            .keys
            .iter()
            .map(|k| KeyRow {
                id: k.id.clone().unwrap_or_default(),
                label: k.label.clone().unwrap_or_default(),
                created: k.created_at.as_deref().map(short_time).unwrap_or_default(),
                expires: k.expires_at.as_deref().map(short_time).unwrap_or_default(),
            })
            .collect(),
        new_secret,
        subs,
        choices,
        requests_month: count(
            usage
                .body
                .get("requests")
                .and_then(Value::as_u64)
                .unwrap_or(0),
        ),
        period,
        usage_series,
        invoices,
        notices,
        deprecated,
        sub_error,
    })
}

pub(super) fn previous_month(period: &str) -> String {
    let (y, m) = period.split_once('-').unwrap_or(("1970", "01"));
    let (y, m): (i32, u32) = (y.parse().unwrap_or(1970), m.parse().unwrap_or(1));
    if m <= 1 {
        format!("{:04}-12", y - 1)
    } else {
        format!("{y:04}-{:02}", m - 1)
    }
}

pub(super) async fn app_page(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Path(app): Path<String>,
    Query(q): Query<MsgQuery>,
) -> Response {
    match require_dev(&web, &headers, &ip, &format!("/apps/{}", enc(&app))).await {
        Ok(dev) => {
            app_view(
                &web,
                &dev,
                &app,
                Flash::from_code(q.msg.as_deref()),
                None,
                None,
            )
            .await
        }
        Err(r) => r,
    }
}

/// The developer and their app, for a change to it; or the response to give instead.
pub(super) async fn own_app_change(
    web: &Web,
    headers: &HeaderMap,
    ip: &ClientIp,
    app: &str,
    csrf: &str,
) -> Result<Dev, Response> {
    let dev = require_dev(web, headers, ip, &format!("/apps/{}", enc(app))).await?;
    check_csrf(&dev, csrf)?;
    let doc = document(web).await?;
    if own_app(&doc, &dev, app).is_none() {
        return Err(see_other("/apps"));
    }
    Ok(dev)
}

#[derive(Deserialize)]
pub(super) struct KeyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    label: String,
}

pub(super) async fn new_key(
    web: &Web,
    dev: &Dev,
    app: &str,
    label: &str,
) -> Result<String, String> {
    let mut body = json!({});
    if !label.trim().is_empty() {
        body["label"] = json!(label.trim().chars().take(100).collect::<String>());
    }
    let answer = web
        .api
        .call(
            &dev.who,
            Method::POST,
            &format!("/api/apps/{}/keys", enc(app)),
            Some(body),
        )
        .await;
    match answer.body.get("key").and_then(Value::as_str) {
        Some(k) if answer.ok() => Ok(k.to_string()),
        _ => Err(answer.detail()),
    }
}

pub(super) async fn create_key(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Path(app): Path<String>,
    Form(f): Form<KeyForm>,
) -> Response {
    let dev = match own_app_change(&web, &headers, &ip, &app, &f.csrf).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    match new_key(&web, &dev, &app, &f.label).await {
        Ok(secret) => {
            let flash = Flash::ok("Your new key is below. Copy it now: it is shown only once.");
            app_view(&web, &dev, &app, flash, Some(secret), None).await
        }
        Err(e) => app_view(&web, &dev, &app, Flash::error(e), None, None).await,
    }
}

pub(super) async fn revoke(web: &Web, dev: &Dev, app: &str, id: &str) -> Result<(), String> {
    let answer = web
        .api
        .call(
            &dev.who,
            Method::DELETE,
            &format!("/api/apps/{}/keys/{}", enc(app), enc(id)),
            None,
        )
        .await;
    if answer.ok() {
        Ok(())
    } else {
        Err(answer.detail())
    }
}

pub(super) async fn revoke_key(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Path((app, id)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let dev = match own_app_change(&web, &headers, &ip, &app, &f.csrf).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    match revoke(&web, &dev, &app, &id).await {
        Ok(()) => see_other(&format!("/apps/{}?msg=key-revoked", enc(&app))),
        Err(e) => app_view(&web, &dev, &app, Flash::error(e), None, None).await,
    }
}

/// Rotation: a new key is made, then the old one is revoked; the new secret is shown once.
pub(super) async fn rotate_key(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Path((app, id)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let dev = match own_app_change(&web, &headers, &ip, &app, &f.csrf).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let label = document(&web)
        .await
        .ok()
        .and_then(|doc| {
            own_app(&doc, &dev, &app)
                .and_then(|a| a.keys.iter().find(|k| k.id.as_deref() == Some(id.as_str())))
                .and_then(|k| k.label.clone())
        })
        .unwrap_or_default();
    let secret = match new_key(&web, &dev, &app, &label).await {
        Ok(s) => s,
        Err(e) => return app_view(&web, &dev, &app, Flash::error(e), None, None).await,
    };
    let flash = match revoke(&web, &dev, &app, &id).await {
        Ok(()) => Flash::ok(
            "Key rotated: the old key stopped working. Copy the new one now: it is shown only once.",
        ),
        Err(e) => Flash::error(format!(
            "A new key was made, but the old one could not be revoked: {e}"
        )),
    };
    app_view(&web, &dev, &app, flash, Some(secret), None).await
}

#[derive(Deserialize)]
pub(super) struct SubscribeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    plan: String,
}

pub(super) async fn subscribe(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Path(app): Path<String>,
    Form(f): Form<SubscribeForm>,
) -> Response {
    let dev = match own_app_change(&web, &headers, &ip, &app, &f.csrf).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let Some((product, plan)) = f.plan.split_once(':') else {
        return app_view(
            &web,
            &dev,
            &app,
            Flash::default(),
            None,
            Some("choose a plan".to_string()),
        )
        .await;
    };
    let public = document(&web)
        .await
        .map(|doc| {
            doc.products
                .iter()
                .any(|p| p.name == product && p.visibility == tollgate_model::Visibility::Public)
        })
        .unwrap_or(false);
    if !public {
        return app_view(
            &web,
            &dev,
            &app,
            Flash::default(),
            None,
            Some("choose a plan from the list".to_string()),
        )
        .await;
    }
    let answer = web
        .api
        .call(
            &dev.who,
            Method::POST,
            "/api/subscriptions",
            Some(json!({ "app": app, "product": product, "plan": plan })),
        )
        .await;
    if !answer.ok() {
        return app_view(
            &web,
            &dev,
            &app,
            Flash::default(),
            None,
            Some(answer.detail()),
        )
        .await;
    }
    let pending = answer.body.get("status").and_then(Value::as_str) == Some("pending");
    let msg = if pending { "pending" } else { "subscribed" };
    see_other(&format!("/apps/{}?msg={msg}", enc(&app)))
}

#[derive(Deserialize)]
pub(super) struct SeriesQuery {
    #[serde(default)]
    metric: String,
}

/// The app's traffic over the last 24 hours, for its usage chart: the analytics API's
/// answer, filtered to this app.
pub(super) async fn usage_series(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Path(app): Path<String>,
    Query(q): Query<SeriesQuery>,
) -> Response {
    let Some(dev) = current_dev(&web, &headers, &ip).await else {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "detail": "sign in" })),
        )
            .into_response();
    };
    let Ok(doc) = document(&web).await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    if own_app(&doc, &dev, &app).is_none() {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "detail": "no such app" })),
        )
            .into_response();
    }
    let metric = if q.metric == "errors" {
        "errors"
    } else {
        "requests"
    };
    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let from = fmt(now - time::Duration::hours(24));
    let to = fmt(now + time::Duration::minutes(1));
    let answer = web
        .api
        .get(
            &dev.who,
            &format!(
                "/api/analytics/timeseries?metric={metric}&step=15m&app={}&from={}&to={}",
                enc(&app),
                enc(&from),
                enc(&to)
            ),
        )
        .await;
    (answer.status, axum::Json(answer.body)).into_response()
}
