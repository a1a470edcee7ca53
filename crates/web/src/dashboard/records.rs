//! Apps and developers, invoices, the audit log, gateway nodes and users.

use super::*;

// ---- apps and developers ----

pub(crate) struct AppRow {
    pub name: String,
    pub owner: String,
    pub keys: usize,
    pub subscriptions: String,
}

pub(crate) struct DevRow {
    pub email: String,
    pub name: String,
    pub organization: String,
    pub apps: usize,
    pub blocked: bool,
}

#[derive(Template)]
#[template(path = "dash/apps.html")]
pub(super) struct AppsPage {
    c: Chrome,
    apps: Vec<AppRow>,
    developers: Vec<DevRow>,
}

pub(super) async fn apps(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
) -> Response {
    let s = match signed(&web, &headers, &ip).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let doc = match tollgate_admin::current_document(&web.admin).await {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    let apps = doc
        .apps
        .iter()
        .map(|a| AppRow {
            name: a.name.clone(),
            owner: a.owner.clone(),
            keys: a.keys.len(),
            subscriptions: doc
                .subscriptions
                .iter()
                .filter(|s| s.app == a.name)
                .map(|s| format!("{} ({})", s.product, s.plan))
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect();
    let developers = doc
        .developers
        .iter()
        .map(|d| DevRow {
            email: d.email.clone(),
            name: d.name.clone().unwrap_or_default(),
            organization: d.organization.clone().unwrap_or_default(),
            apps: doc.apps.iter().filter(|a| a.owner == d.email).count(),
            blocked: d.blocked,
        })
        .collect();
    ok(&AppsPage {
        c: Chrome::new("Apps & developers", "apps", &s, Flash::default()),
        apps,
        developers,
    })
}

// ---- invoices ----

pub(crate) struct InvoiceRow {
    pub id: String,
    pub app: String,
    pub product: String,
    pub plan: String,
    pub period: String,
    pub total: String,
}

#[derive(Template)]
#[template(path = "dash/invoices.html")]
pub(super) struct InvoicesPage {
    c: Chrome,
    period: String,
    invoices: Vec<InvoiceRow>,
}

#[derive(Deserialize, Default)]
pub(super) struct PeriodQuery {
    #[serde(default)]
    period: Option<String>,
}

pub(crate) fn this_month() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{:04}-{:02}", now.year(), u8::from(now.month()))
}

pub(crate) fn invoice_rows(v: &Value) -> Vec<InvoiceRow> {
    items(v, "invoices")
        .map(|i| {
            let s = |k: &str| text(i, k);
            InvoiceRow {
                id: s("id"),
                app: s("app"),
                product: s("product"),
                plan: s("plan"),
                period: s("period"),
                total: format!("{} {}", s("total"), s("currency")),
            }
        })
        .collect()
}

pub(super) async fn invoices(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Query(q): Query<PeriodQuery>,
) -> Response {
    let s = match signed(&web, &headers, &ip).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let period = q
        .period
        .filter(|p| p.len() == 7 && p.as_bytes()[4] == b'-')
        .unwrap_or_else(this_month);
    let answer = web
        .api
        .get(&s.who, &format!("/api/invoices?period={}", enc(&period)))
        .await;
    let flash = if answer.ok() {
        Flash::default()
    } else {
        Flash::error(answer.detail())
    };
    ok(&InvoicesPage {
        c: Chrome::new("Invoices", "invoices", &s, flash),
        period,
        invoices: invoice_rows(&answer.body),
    })
}

// ---- audit log ----

pub(crate) struct AuditRow {
    pub at: String,
    pub actor: String,
    pub source: String,
    pub op: String,
    pub kind: String,
    pub name: String,
    pub change: String,
}

#[derive(Template)]
#[template(path = "dash/audit.html")]
pub(super) struct AuditPage {
    c: Chrome,
    entries: Vec<AuditRow>,
    intact: Option<bool>,
    problems: Vec<String>,
    allowed: bool,
}

/// The fields that differ between two JSON objects, as `field: before → after`.
pub(super) fn changed_fields(before: Option<&str>, after: Option<&str>) -> String {
    let parse = |s: Option<&str>| {
        s.and_then(|s| serde_json::from_str::<Value>(s).ok())
            .unwrap_or(Value::Null)
    };
    let (b, a) = (parse(before), parse(after));
    let (Some(bo), Some(ao)) = (b.as_object(), a.as_object()) else {
        return String::new();
    };
    let mut out = Vec::new();
    for (k, av) in ao {
        let bv = bo.get(k).unwrap_or(&Value::Null);
        if bv != av {
            let short = |v: &Value| {
                let t = v.to_string();
                if t.len() > 40 {
                    format!("{}…", t.chars().take(40).collect::<String>())
                } else {
                    t
                }
            };
            out.push(format!("{k}: {} → {}", short(bv), short(av)));
        }
    }
    for k in bo.keys().filter(|k| !ao.contains_key(*k)) {
        out.push(format!("{k} removed"));
    }
    out.join("; ")
}

pub(super) async fn audit(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
) -> Response {
    let s = match signed(&web, &headers, &ip).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let answer = web
        .api
        .get(&s.who, "/api/audit?newest=true&limit=200")
        .await;
    if answer.status == StatusCode::FORBIDDEN {
        return page(
            StatusCode::FORBIDDEN,
            &AuditPage {
                c: Chrome::new("Audit log", "audit", &s, Flash::default()),
                entries: Vec::new(),
                intact: None,
                problems: Vec::new(),
                allowed: false,
            },
        );
    }
    let verify = web.api.get(&s.who, "/api/audit/verify").await;
    let entries = items(&answer.body, "entries")
        .map(|e| {
            let st = |k: &str| text(e, k);
            AuditRow {
                at: short_time(&st("at")),
                actor: st("actor"),
                source: st("source"),
                op: st("op"),
                kind: st("kind"),
                name: st("name"),
                change: changed_fields(
                    e.get("before").and_then(Value::as_str),
                    e.get("after").and_then(Value::as_str),
                ),
            }
        })
        .collect();
    let problems = items(&verify.body, "problems")
        .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_string))
        .collect();
    ok(&AuditPage {
        c: Chrome::new("Audit log", "audit", &s, Flash::default()),
        entries,
        intact: verify.body.get("intact").and_then(Value::as_bool),
        problems,
        allowed: true,
    })
}

// ---- nodes ----

pub(crate) struct NodeRow {
    pub name: String,
    pub version: String,
    pub health: String,
    pub badge: &'static str,
    pub uptime: String,
    pub revision: i64,
    pub current: bool,
    pub heartbeat: String,
}

#[derive(Template)]
#[template(path = "dash/nodes.html")]
pub(super) struct NodesPage {
    c: Chrome,
    revision: i64,
    nodes: Vec<NodeRow>,
}

pub(super) fn uptime(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

pub(super) async fn nodes(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
) -> Response {
    let s = match signed(&web, &headers, &ip).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let answer = web.api.get(&s.who, "/api/nodes").await;
    let nodes = items(&answer.body, "nodes")
        .map(|n| {
            let st = |k: &str| text(n, k);
            let health = st("health");
            NodeRow {
                name: st("name"),
                version: st("version"),
                badge: status_badge(&health),
                health,
                uptime: uptime(n.get("uptime_seconds").and_then(Value::as_u64).unwrap_or(0)),
                revision: n.get("revision").and_then(Value::as_i64).unwrap_or(0),
                current: n.get("current").and_then(Value::as_bool).unwrap_or(false),
                heartbeat: short_time(&st("last_heartbeat")),
            }
        })
        .collect();
    ok(&NodesPage {
        c: Chrome::new("Gateway nodes", "nodes", &s, Flash::default()),
        revision: answer
            .body
            .get("revision")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        nodes,
    })
}

// ---- users ----

pub(crate) struct UserRow {
    pub email: String,
    pub name: String,
    pub role: String,
    pub team: String,
    pub disabled: bool,
}

#[derive(Template)]
#[template(path = "dash/users.html")]
pub(super) struct UsersPage {
    c: Chrome,
    users: Vec<UserRow>,
    allowed: bool,
    form: NewUserForm,
    errors: HashMap<String, String>,
    roles: Vec<&'static str>,
}

#[derive(Deserialize, Default, Clone)]
pub(super) struct NewUserForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    team: String,
}

pub(super) async fn users_page(
    web: &Web,
    s: &Signed,
    flash: Flash,
    form: NewUserForm,
    errors: HashMap<String, String>,
) -> Response {
    let answer = web.api.get(&s.who, "/api/users").await;
    let allowed = answer.status != StatusCode::FORBIDDEN;
    let users = items(&answer.body, "users")
        .map(|u| {
            let st = |k: &str| text(u, k);
            UserRow {
                email: st("email"),
                name: st("name"),
                role: st("role"),
                team: st("team"),
                disabled: u.get("disabled_at").is_some_and(|v| !v.is_null()),
            }
        })
        .collect();
    let status = if !allowed {
        StatusCode::FORBIDDEN
    } else if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let roles = [Role::Viewer, Role::Editor, Role::Admin, Role::Owner]
        .into_iter()
        .filter(|r| *r <= s.who.role)
        .map(Role::as_str)
        .collect();
    page(
        status,
        &UsersPage {
            c: Chrome::new("Users", "users", s, flash),
            users,
            allowed,
            form: NewUserForm {
                password: String::new(),
                ..form
            },
            errors,
            roles,
        },
    )
}

pub(super) async fn users(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Query(q): Query<MsgQuery>,
) -> Response {
    match signed(&web, &headers, &ip).await {
        Ok(s) => {
            let form = NewUserForm {
                role: "viewer".to_string(),
                ..Default::default()
            };
            users_page(
                &web,
                &s,
                Flash::from_code(q.msg.as_deref()),
                form,
                HashMap::new(),
            )
            .await
        }
        Err(r) => r,
    }
}

pub(super) async fn create_user(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Form(f): Form<NewUserForm>,
) -> Response {
    let s = match signed(&web, &headers, &ip).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = check_csrf(&s, &f.csrf) {
        return r;
    }
    let answer = web
        .api
        .call(
            &s.who,
            Method::POST,
            "/api/users",
            Some({
                let mut user = json!({
                    "email": f.email, "name": f.name, "password": f.password, "role": f.role,
                });
                if !f.team.trim().is_empty() {
                    user["team"] = json!(f.team.trim());
                }
                user
            }),
        )
        .await;
    if answer.ok() {
        return see_other("/users?msg=user-created");
    }
    let errors = answer.field_errors();
    let flash = if errors.is_empty() {
        Flash::error(answer.detail())
    } else {
        Flash::error("The user was not created: see the fields below.")
    };
    users_page(&web, &s, flash, f, errors).await
}
