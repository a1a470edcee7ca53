//! Admin authentication: bearer tokens, stored as SHA-256 hashes, compared in constant
//! time; and the `/api/tokens` collection.
//!
//! A token has a role, and may be limited to endpoint groups (`scopes`, see
//! [`crate::scopes`]) and belong to a team (see [`crate::teams`]).
//!
//! Generated tokens read `tga_<id>_<secret>`: the id finds the stored row, the whole token
//! is hashed and compared. A token supplied by the operator through
//! `TOLLGATE_ADMIN_TOKEN` has any form and is stored under the id `bootstrap`.

use std::sync::Arc;
use tollgate_store::Actor;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tollgate_store::TokenRecord;

use crate::AdminState;
use crate::problem::ApiError;
use crate::scopes::{Scope, scope_of};
use crate::teams::{may_assign, team_problem};

/// What a token may do. Higher roles include the lower ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Editor,
    Admin,
    Owner,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "viewer" => Role::Viewer,
            "editor" => Role::Editor,
            "admin" => Role::Admin,
            "owner" => Role::Owner,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }
}

/// Who is calling, once authenticated.
#[derive(Clone, Debug)]
pub struct Principal {
    pub role: Role,
    /// `token:ID`, as the audit log names the actor.
    pub label: String,
    /// The client address of the request, as the audit log records it.
    pub from: String,
    /// The team whose APIs this principal may change; `None` may change everything its
    /// role allows.
    pub team: Option<String>,
    /// The endpoint groups a scoped token reaches; `None` reaches every group.
    pub scopes: Option<Vec<String>>,
}

impl Principal {
    /// The actor recorded in the audit log.
    pub fn actor(&self) -> Actor<'_> {
        Actor {
            who: &self.label,
            from: &self.from,
        }
    }

    /// Whether this principal reaches the endpoint group `scope`.
    pub fn reaches(&self, scope: Scope) -> bool {
        self.scopes
            .as_ref()
            .is_none_or(|list| list.iter().any(|s| s == scope.as_str()))
    }

    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "this needs the {} role; the token has {}",
                    role.as_str(),
                    self.role.as_str()
                ),
            ))
        }
    }
}

/// Hex SHA-256 of a token: what the store keeps.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token and its record (the token itself is returned only here).
pub fn generate_token(name: &str, role: Role, expires_at: Option<String>) -> (String, TokenRecord) {
    let mut bytes = [0u8; 26];
    rand::rng().fill_bytes(&mut bytes);
    let id = hex::encode(&bytes[..6]);
    let secret = hex::encode(&bytes[6..]);
    let token = format!("tga_{id}_{secret}");
    let record = TokenRecord {
        id,
        name: name.to_string(),
        secret_hash: hash_token(&token),
        role: role.as_str().to_string(),
        created_at: tollgate_store::now_rfc3339(),
        expires_at,
        revoked_at: None,
        scopes: None,
        team: None,
    };
    (token, record)
}

fn unauthorized(detail: &str) -> Response {
    let mut resp = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", detail).into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"tollgate-admin\""),
    );
    resp
}

/// The dashboard's session cookie. Its value is a random id; the store keeps its SHA-256.
pub const DASHBOARD_COOKIE: &str = "tg_dashboard";
/// The header a signed-in dashboard page sends its CSRF token in, on every change.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The value of one cookie in a request, if sent.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Whether two secrets are equal, compared in constant time.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// The signed-in dashboard user behind a session cookie value, with the session's CSRF
/// token. None for an unknown, expired or disabled session.
pub async fn dashboard_session(
    state: &AdminState,
    cookie_value: &str,
) -> Result<Option<(tollgate_store::UserRecord, String)>, ApiError> {
    if cookie_value.is_empty() || cookie_value.len() > 200 {
        return Ok(None);
    }
    let Some(session) = state
        .store
        .session(&hash_token(cookie_value), "dashboard")
        .await?
    else {
        return Ok(None);
    };
    Ok(state
        .store
        .user(&session.subject)
        .await?
        .filter(|u| u.disabled_at.is_none())
        .map(|u| (u, session.csrf)))
}

fn client_address(req: &Request) -> String {
    req.extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string())
}

/// Middleware: every `/api` route needs a caller: a valid bearer token, or a signed-in
/// dashboard session (whose changes must carry the session's CSRF token in
/// `X-CSRF-Token`), or a principal set by this process (the web pages calling the API in
/// process). Read-only methods need the viewer role, changes need editor; handlers ask for
/// more where needed. A scoped token reaches only the groups of its scopes, and a principal
/// with a team changes nothing in the groups that act on the whole node.
pub async fn require_token(
    State(state): State<Arc<AdminState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let principal = match req.extensions().get::<Principal>() {
        // Only code in this process can put a principal in a request's extensions.
        Some(p) => p.clone(),
        None => match authenticate(
            &state,
            req.headers().clone(),
            req.method().clone(),
            client_address(&req),
        )
        .await
        {
            Ok(p) => p,
            Err(resp) => return resp,
        },
    };
    // Reading needs viewer, changing needs editor; a price quote changes nothing.
    let read_only = matches!(*req.method(), Method::GET | Method::HEAD)
        || (req.method() == Method::POST && req.uri().path().ends_with("/pricing/quote"));
    let needed = if read_only {
        Role::Viewer
    } else {
        Role::Editor
    };
    if let Err(e) = principal.require(needed) {
        return e.into_response();
    }
    if let Err(e) = check_scope(&principal, req.uri().path(), read_only) {
        return e.into_response();
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// The scope and team rules for one request to `path`.
fn check_scope(principal: &Principal, path: &str, read_only: bool) -> Result<(), ApiError> {
    let scope = scope_of(path);
    if let Some(granted) = &principal.scopes {
        let Some(scope) = scope else {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this endpoint belongs to no scope; it needs a token without scopes",
            ));
        };
        if !principal.reaches(scope) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "this needs the `{}` scope; the token has {}",
                    scope.as_str(),
                    granted.join(", ")
                ),
            ));
        }
    }
    if let (Some(team), false) = (&principal.team, read_only)
        && scope.is_none_or(|s| !s.open_to_teams())
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "changes in {} need a principal without a team; yours is `{team}`",
                scope.map_or("this endpoint".to_string(), |s| format!(
                    "the `{}` group",
                    s.as_str()
                ))
            ),
        ));
    }
    Ok(())
}

async fn authenticate(
    state: &AdminState,
    headers: axum::http::HeaderMap,
    method: Method,
    from: String,
) -> Result<Principal, Response> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string());
    let Some(token) = bearer else {
        if let Some(value) = cookie(&headers, DASHBOARD_COOKIE) {
            return session_principal(state, &headers, &method, from, value).await;
        }
        return Err(unauthorized("send `Authorization: Bearer <admin token>`"));
    };
    let id = match token
        .strip_prefix("tga_")
        .and_then(|rest| rest.split_once('_'))
    {
        Some((id, _)) if id.len() == 12 => id.to_string(),
        _ => "bootstrap".to_string(),
    };
    let record = match state.store.token(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => return Err(unauthorized("invalid admin token")),
        Err(e) => return Err(ApiError::internal(e).into_response()),
    };
    if !same_secret(&hash_token(&token), &record.secret_hash) || record.revoked_at.is_some() {
        return Err(unauthorized("invalid admin token"));
    }
    if let Some(expiry) = &record.expires_at
        && expiry.as_str() <= tollgate_store::now_rfc3339().as_str()
    {
        return Err(unauthorized("this admin token has expired"));
    }
    let Some(role) = Role::parse(&record.role) else {
        return Err(unauthorized("this admin token has an unknown role"));
    };
    Ok(Principal {
        label: format!("token:{}", record.id),
        role,
        from,
        team: record.team,
        scopes: record.scopes,
    })
}

async fn session_principal(
    state: &AdminState,
    headers: &axum::http::HeaderMap,
    method: &Method,
    from: String,
    value: &str,
) -> Result<Principal, Response> {
    let (user, csrf) = match dashboard_session(state, value).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            return Err(unauthorized(
                "the dashboard session has ended; sign in again",
            ));
        }
        Err(e) => return Err(e.into_response()),
    };
    if !matches!(*method, Method::GET | Method::HEAD) {
        let sent = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !same_secret(sent, &csrf) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "a change from a dashboard session needs its CSRF token in X-CSRF-Token",
            )
            .into_response());
        }
    }
    let Some(role) = Role::parse(&user.role) else {
        return Err(unauthorized("this user has an unknown role"));
    };
    Ok(Principal {
        label: format!("user:{}", user.email),
        role,
        from,
        team: user.team,
        scopes: None,
    })
}

pub fn routes() -> Router<Arc<AdminState>> {
    Router::new()
        .route("/tokens", get(list_tokens).post(create_token))
        .route("/tokens/{id}", delete(revoke_token))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
    /// viewer, editor, admin or owner (default viewer).
    #[serde(default)]
    role: Option<String>,
    /// Lifetime in seconds; none means no expiry.
    #[serde(default)]
    expires_in: Option<u64>,
    /// Endpoint groups the token reaches: config, identities, products, billing,
    /// analytics, audit, tokens. None reaches every group.
    #[serde(default)]
    scopes: Option<Vec<String>>,
    /// The team whose APIs the token may change; none for a token without a team.
    #[serde(default)]
    team: Option<String>,
}

/// Lists admin tokens (never their secrets).
#[utoipa::path(get, path = "/api/tokens", responses((status = 200, description = "Tokens")), security(("bearer" = [])))]
pub async fn list_tokens(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
) -> Result<Json<serde_json::Value>, ApiError> {
    who.require(Role::Admin)?;
    Ok(Json(json!({ "tokens": state.store.tokens().await? })))
}

/// Creates a token; the answer holds its secret, shown this once.
#[utoipa::path(post, path = "/api/tokens", request_body = NewToken, responses((status = 201, description = "Created; `token` is shown once")), security(("bearer" = [])))]
pub async fn create_token(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    Json(req): Json<NewToken>,
) -> Result<Response, ApiError> {
    who.require(Role::Admin)?;
    let role = match req.role.as_deref() {
        None => Role::Viewer,
        Some(r) => Role::parse(r).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown role `{r}`: use viewer, editor, admin or owner"
            ))
        })?,
    };
    if role > who.role {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "a token cannot grant more than its own role",
        ));
    }
    if req.name.trim().is_empty() || req.name.len() > 100 {
        return Err(ApiError::bad_request("name must be 1 to 100 characters"));
    }
    let scopes = req
        .scopes
        .clone()
        .map(|list| granted_scopes(&who, list))
        .transpose()?;
    if let Some(team) = req.team.as_deref()
        && let Some(problem) = team_problem(team)
    {
        return Err(invalid_token("team", problem.to_string()));
    }
    may_assign(&who, req.team.as_deref(), "a token")?;
    if req.scopes.is_none() && who.scopes.is_some() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "a token cannot grant scopes it does not have: list `scopes` within the token's own",
        ));
    }
    let expires_at = req.expires_in.map(|secs| {
        let at = time::OffsetDateTime::now_utc()
            + time::Duration::seconds(
                i64::try_from(secs)
                    .unwrap_or(i64::MAX / 2)
                    .min(100 * 365 * 86_400),
            );
        at.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    });
    let (token, mut record) = generate_token(&req.name, role, expires_at);
    record.scopes = scopes;
    record.team = req.team;
    state.store.put_token(&record, &who.actor()).await?;
    let body = json!({
        "id": record.id, "name": record.name, "role": record.role, "expires_at": record.expires_at,
        "scopes": record.scopes, "team": record.team, "token": token,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

fn invalid_token(path: &str, message: String) -> ApiError {
    let mut e = ApiError::invalid(vec![tollgate_model::Located {
        path: path.to_string(),
        line: None,
        column: None,
        message,
    }]);
    e.kind = "invalid-token";
    e.detail = e
        .detail
        .replace("the configuration is invalid", "the token is invalid");
    e
}

/// The scopes a new token asks for, checked: each known, and each one `who` has.
fn granted_scopes(who: &Principal, list: Vec<String>) -> Result<Vec<String>, ApiError> {
    if list.is_empty() {
        return Err(invalid_token(
            "scopes",
            "list at least one scope, or leave `scopes` out to reach every group".to_string(),
        ));
    }
    let mut scopes = Vec::new();
    for name in list {
        let Some(scope) = Scope::parse(&name) else {
            let known: Vec<_> = Scope::ALL.iter().map(|s| s.as_str()).collect();
            return Err(invalid_token(
                "scopes",
                format!("unknown scope `{name}`: use {}", known.join(", ")),
            ));
        };
        if !who.reaches(scope) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("a token cannot grant the `{name}` scope: it does not have it"),
            ));
        }
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    scopes.sort();
    Ok(scopes.iter().map(|s| s.as_str().to_string()).collect())
}

/// Revokes a token at once.
#[utoipa::path(delete, path = "/api/tokens/{id}", params(("id" = String, Path)), responses((status = 204), (status = 404)), security(("bearer" = [])))]
pub async fn revoke_token(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    who.require(Role::Admin)?;
    if let Some(target) = state.store.token(&id).await? {
        if Role::parse(&target.role).is_some_and(|r| r > who.role) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "a token cannot revoke one with a higher role",
            ));
        }
        may_assign(&who, target.team.as_deref(), "a token")?;
    }
    if state.store.revoke_token(&id, &who.actor()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no live token `{id}`")))
    }
}
