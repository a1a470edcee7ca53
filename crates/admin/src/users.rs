//! Dashboard users (`/api/users`): people who sign in to the dashboard with an e-mail and a
//! password, each with a role (viewer, editor, admin, owner) that scopes what they may do,
//! exactly as a token's role does, and optionally a team (whose APIs alone they may
//! change). Managing users needs the admin role, no one grants or removes a role above
//! their own, and a principal with a team manages only users of that team.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;
use tollgate_model::Located;
use tollgate_store::UserRecord;

use crate::AdminState;
use crate::auth::{Principal, Role};
use crate::passwords::{hash_password, password_problem};
use crate::problem::ApiError;
use crate::teams::{may_assign, team_problem};

pub fn routes() -> Router<Arc<AdminState>> {
    Router::new()
        .route("/users", get(list_users).post(create_user))
        .route(
            "/users/{email}",
            get(get_user).patch(update_user).delete(delete_user),
        )
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    email: String,
    #[serde(default)]
    name: Option<String>,
    password: String,
    /// viewer, editor, admin or owner (default viewer).
    #[serde(default)]
    role: Option<String>,
    /// The team whose APIs the user may change; none for a user without a team.
    #[serde(default)]
    team: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    role: Option<String>,
    /// true disables sign-in (and ends the user's sessions); false enables it again.
    #[serde(default)]
    disabled: Option<bool>,
    /// A new team; an empty string leaves the user without a team.
    #[serde(default)]
    team: Option<String>,
}

fn field(path: &str, message: impl Into<String>) -> Located {
    Located {
        path: path.to_string(),
        line: None,
        column: None,
        message: message.into(),
    }
}

fn invalid(errors: Vec<Located>) -> ApiError {
    let mut e = ApiError::invalid(errors);
    e.kind = "invalid-user";
    e.detail = e
        .detail
        .replace("the configuration is invalid", "the user is invalid");
    e
}

/// A plausible e-mail address: one `@`, something on each side, a dot in the domain.
pub fn email_problem(email: &str) -> Option<&'static str> {
    let ok = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    (!ok).then_some("enter an e-mail address such as ada@example.com")
}

fn parse_role(field_path: &str, role: Option<&str>, who: &Principal) -> Result<Role, Located> {
    let role = match role {
        None => Role::Viewer,
        Some(r) => Role::parse(r).ok_or_else(|| {
            field(
                field_path,
                format!("unknown role `{r}`: use viewer, editor, admin or owner"),
            )
        })?,
    };
    if role > who.role {
        return Err(field(
            field_path,
            format!(
                "you cannot grant the {} role: yours is {}",
                role.as_str(),
                who.role.as_str()
            ),
        ));
    }
    Ok(role)
}

#[utoipa::path(get, path = "/api/users", responses((status = 200, description = "Dashboard users (never their passwords)")), security(("bearer" = [])))]
pub async fn list_users(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
) -> Result<Json<serde_json::Value>, ApiError> {
    who.require(Role::Admin)?;
    Ok(Json(json!({ "users": state.store.users().await? })))
}

#[utoipa::path(get, path = "/api/users/{email}", params(("email" = String, Path)), responses((status = 200), (status = 404)), security(("bearer" = [])))]
pub async fn get_user(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    Path(email): Path<String>,
) -> Result<Json<UserRecord>, ApiError> {
    who.require(Role::Admin)?;
    state
        .store
        .user(&email)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no user `{email}`")))
}

/// Creates a dashboard user who signs in with this e-mail and password.
#[utoipa::path(post, path = "/api/users", request_body = NewUser, responses((status = 201), (status = 409), (status = 422)), security(("bearer" = [])))]
pub async fn create_user(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    Json(req): Json<NewUser>,
) -> Result<Response, ApiError> {
    who.require(Role::Admin)?;
    let email = req.email.trim().to_ascii_lowercase();
    let mut errors = Vec::new();
    if let Some(p) = email_problem(&email) {
        errors.push(field("email", p));
    }
    if let Some(p) = password_problem(&req.password) {
        errors.push(field("password", p));
    }
    let name = req.name.unwrap_or_default().trim().to_string();
    if name.len() > 100 {
        errors.push(field("name", "use at most 100 characters"));
    }
    let role = parse_role("role", req.role.as_deref(), &who).unwrap_or_else(|e| {
        errors.push(e);
        Role::Viewer
    });
    if let Some(p) = req.team.as_deref().and_then(team_problem) {
        errors.push(field("team", p));
    }
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    may_assign(&who, req.team.as_deref(), "a user")?;
    if state.store.user(&email).await?.is_some() {
        return Err(invalid(vec![field(
            "email",
            format!("a user `{email}` exists"),
        )]));
    }
    let record = UserRecord {
        email,
        name,
        password_hash: hash_password(&req.password).await,
        role: role.as_str().to_string(),
        created_at: tollgate_store::now_rfc3339(),
        disabled_at: None,
        team: req.team,
    };
    state.store.put_user(&record, &who.actor()).await?;
    Ok((StatusCode::CREATED, Json(record)).into_response())
}

/// Changes a user's name, password, role, or whether they may sign in.
#[utoipa::path(patch, path = "/api/users/{email}", params(("email" = String, Path)), request_body = UserChange, responses((status = 200), (status = 404), (status = 422)), security(("bearer" = [])))]
pub async fn update_user(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    Path(email): Path<String>,
    Json(req): Json<UserChange>,
) -> Result<Json<UserRecord>, ApiError> {
    who.require(Role::Admin)?;
    let mut user = state
        .store
        .user(&email)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no user `{email}`")))?;
    outranks(&who, &user)?;
    may_assign(&who, user.team.as_deref(), "a user")?;
    let mut errors = Vec::new();
    if let Some(team) = req.team {
        let team = (!team.is_empty()).then_some(team);
        match team.as_deref().and_then(team_problem) {
            Some(p) => errors.push(field("team", p)),
            None => {
                may_assign(&who, team.as_deref(), "a user")?;
                user.team = team;
            }
        }
    }
    if let Some(name) = req.name {
        user.name = name.trim().chars().take(100).collect();
    }
    if let Some(role) = req.role.as_deref() {
        match parse_role("role", Some(role), &who) {
            Ok(r) => user.role = r.as_str().to_string(),
            Err(e) => errors.push(e),
        }
    }
    let mut sign_out = false;
    if let Some(password) = req.password.as_deref() {
        match password_problem(password) {
            Some(p) => errors.push(field("password", p)),
            None => {
                user.password_hash = hash_password(password).await;
                sign_out = true;
            }
        }
    }
    if let Some(disabled) = req.disabled {
        if disabled && user.disabled_at.is_none() {
            user.disabled_at = Some(tollgate_store::now_rfc3339());
            sign_out = true;
        } else if !disabled {
            user.disabled_at = None;
        }
    }
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    state.store.put_user(&user, &who.actor()).await?;
    if sign_out {
        state
            .store
            .delete_sessions_of("dashboard", &user.email)
            .await?;
    }
    Ok(Json(user))
}

#[utoipa::path(delete, path = "/api/users/{email}", params(("email" = String, Path)), responses((status = 204), (status = 404)), security(("bearer" = [])))]
pub async fn delete_user(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    Path(email): Path<String>,
) -> Result<StatusCode, ApiError> {
    who.require(Role::Admin)?;
    let user = state
        .store
        .user(&email)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no user `{email}`")))?;
    outranks(&who, &user)?;
    may_assign(&who, user.team.as_deref(), "a user")?;
    state.store.delete_user(&email, &who.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// No one changes or removes a user whose role is above their own.
fn outranks(who: &Principal, user: &UserRecord) -> Result<(), ApiError> {
    if Role::parse(&user.role).is_some_and(|r| r > who.role) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "`{}` has a role above yours ({})",
                user.email,
                who.role.as_str()
            ),
        ));
    }
    Ok(())
}
