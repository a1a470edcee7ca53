//! Developers, apps and API keys (CONTRACT §3): `/api/developers`, `/api/apps`,
//! `/api/apps/{app}/keys`; and TLS certificates, `/api/certificates`. A new key's secret is in the creation answer and nowhere else.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get};
use serde::Deserialize;
use serde_json::json;
use tollgate_model::{App, AppKey, Certificate, Developer};

use crate::AdminState;
use crate::auth::Principal;
use crate::collections::{answer, check_name, gone, parse, read, write};
use crate::problem::ApiError;

pub fn routes() -> Router<Arc<AdminState>> {
    Router::new()
        .route("/developers", get(list_developers).post(create_developer))
        .route(
            "/developers/{email}",
            get(get_developer)
                .put(put_developer)
                .delete(delete_developer),
        )
        .route("/apps", get(list_apps).post(create_app))
        .route("/apps/{app}", get(get_app).put(put_app).delete(delete_app))
        .route("/apps/{app}/keys", get(list_keys).post(create_key))
        .route("/apps/{app}/keys/{id}", delete(revoke_key))
        .route(
            "/certificates",
            get(list_certificates).post(create_certificate),
        )
        .route(
            "/certificates/{name}",
            get(get_certificate)
                .put(put_certificate)
                .delete(delete_certificate),
        )
}

// ---- TLS certificates ----

/// A certificate as the API shows it: never the private key.
fn certificate_view(c: &Certificate) -> serde_json::Value {
    let info = tollgate_gateway::tls::certificate_info(&c.cert);
    json!({
        "name": c.name,
        "snis": c.snis,
        "cert": c.cert,
        "info": info.as_ref().ok(),
        "error": info.err(),
    })
}

#[utoipa::path(get, path = "/api/certificates", responses((status = 200, description = "TLS certificates with subject, names and validity (never keys)")), security(("bearer" = [])))]
pub async fn list_certificates(
    State(state): State<Arc<AdminState>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let doc = read(&state).await?;
    Ok(Json(json!({
        "certificates": doc.certificates.iter().map(certificate_view).collect::<Vec<_>>()
    })))
}

#[utoipa::path(get, path = "/api/certificates/{name}", params(("name" = String, Path)), responses((status = 200), (status = 404)), security(("bearer" = [])))]
pub async fn get_certificate(
    State(state): State<Arc<AdminState>>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    read(&state)
        .await?
        .certificates
        .iter()
        .find(|c| c.name == name)
        .map(|c| Json(certificate_view(c)))
        .ok_or_else(|| ApiError::not_found(format!("no certificate `{name}`")))
}

#[utoipa::path(post, path = "/api/certificates", request_body(content = Object, description = "{name, snis, cert, key}: PEM; the key is sealed before it is stored"),
    responses((status = 201), (status = 409), (status = 422)), security(("bearer" = [])))]
pub async fn create_certificate(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let cert: Certificate = parse(&body)?;
    let view = certificate_view(&cert);
    let outcome = write(&state, &who, |doc| {
        if doc.certificates.iter().any(|c| c.name == cert.name) {
            return Err(ApiError::conflict(format!(
                "certificate `{}` exists; PUT /api/certificates/{} replaces it",
                cert.name, cert.name
            )));
        }
        doc.certificates.push(cert);
        Ok(())
    })
    .await?;
    Ok(answer(StatusCode::CREATED, &view, &outcome))
}

/// Replaces a certificate (rotation): every node serves the new one once it installs the
/// revision, without a restart.
#[utoipa::path(put, path = "/api/certificates/{name}", params(("name" = String, Path)), request_body(content = Object),
    responses((status = 200), (status = 201), (status = 422)), security(("bearer" = [])))]
pub async fn put_certificate(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let cert: Certificate = parse(&body)?;
    check_name(&name, &cert.name, "certificate name")?;
    let view = certificate_view(&cert);
    let mut created = false;
    let outcome = write(&state, &who, |doc| {
        match doc.certificates.iter_mut().find(|c| c.name == cert.name) {
            Some(existing) => *existing = cert,
            None => {
                created = true;
                doc.certificates.push(cert);
            }
        }
        Ok(())
    })
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(answer(status, &view, &outcome))
}

#[utoipa::path(delete, path = "/api/certificates/{name}", params(("name" = String, Path)), responses((status = 204), (status = 404)), security(("bearer" = [])))]
pub async fn delete_certificate(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let outcome = write(&state, &who, |doc| {
        let before = doc.certificates.len();
        doc.certificates.retain(|c| c.name != name);
        if doc.certificates.len() == before {
            return Err(ApiError::not_found(format!("no certificate `{name}`")));
        }
        Ok(())
    })
    .await?;
    Ok(gone(&outcome))
}

// ---- developers ----

#[utoipa::path(get, path = "/api/developers", responses((status = 200, description = "All developers")), security(("bearer" = [])))]
pub async fn list_developers(
    State(state): State<Arc<AdminState>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(
        json!({ "developers": read(&state).await?.developers }),
    ))
}

#[utoipa::path(get, path = "/api/developers/{email}", params(("email" = String, Path)), responses((status = 200), (status = 404)), security(("bearer" = [])))]
pub async fn get_developer(
    State(state): State<Arc<AdminState>>,
    Path(email): Path<String>,
) -> Result<Json<Developer>, ApiError> {
    read(&state)
        .await?
        .developers
        .into_iter()
        .find(|d| d.email.eq_ignore_ascii_case(&email))
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no developer `{email}`")))
}

#[utoipa::path(post, path = "/api/developers", request_body(content = Object, description = "A developer (CONTRACT §2)"),
    responses((status = 201), (status = 409), (status = 422)), security(("bearer" = [])))]
pub async fn create_developer(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let dev: Developer = parse(&body)?;
    let created = dev.clone();
    let outcome = write(&state, &who, |doc| {
        if doc
            .developers
            .iter()
            .any(|d| d.email.eq_ignore_ascii_case(&dev.email))
        {
            return Err(ApiError::conflict(format!(
                "developer `{}` exists",
                dev.email
            )));
        }
        doc.developers.push(dev);
        Ok(())
    })
    .await?;
    Ok(answer(StatusCode::CREATED, &created, &outcome))
}

#[utoipa::path(put, path = "/api/developers/{email}", params(("email" = String, Path)), request_body(content = Object),
    responses((status = 200), (status = 201), (status = 422)), security(("bearer" = [])))]
pub async fn put_developer(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    Path(email): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let dev: Developer = parse(&body)?;
    check_name(&email, &dev.email, "email")?;
    let stored = dev.clone();
    let mut created = false;
    let outcome = write(&state, &who, |doc| {
        match doc
            .developers
            .iter_mut()
            .find(|d| d.email.eq_ignore_ascii_case(&dev.email))
        {
            Some(existing) => *existing = dev,
            None => {
                created = true;
                doc.developers.push(dev);
            }
        }
        Ok(())
    })
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(answer(status, &stored, &outcome))
}

#[utoipa::path(delete, path = "/api/developers/{email}", params(("email" = String, Path)),
    responses((status = 204), (status = 404), (status = 422, description = "Still owns apps")), security(("bearer" = [])))]
pub async fn delete_developer(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    Path(email): Path<String>,
) -> Result<Response, ApiError> {
    let outcome = write(&state, &who, |doc| {
        let before = doc.developers.len();
        doc.developers
            .retain(|d| !d.email.eq_ignore_ascii_case(&email));
        if doc.developers.len() == before {
            return Err(ApiError::not_found(format!("no developer `{email}`")));
        }
        Ok(())
    })
    .await?;
    Ok(gone(&outcome))
}

// ---- apps ----

#[utoipa::path(get, path = "/api/apps", responses((status = 200, description = "All apps")), security(("bearer" = [])))]
pub async fn list_apps(
    State(state): State<Arc<AdminState>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(json!({ "apps": read(&state).await?.apps })))
}

async fn find_app(state: &AdminState, name: &str) -> Result<App, ApiError> {
    read(state)
        .await?
        .apps
        .into_iter()
        .find(|a| a.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no app `{name}`")))
}

#[utoipa::path(get, path = "/api/apps/{app}", params(("app" = String, Path)), responses((status = 200), (status = 404)), security(("bearer" = [])))]
pub async fn get_app(
    State(state): State<Arc<AdminState>>,
    Path(app): Path<String>,
) -> Result<Json<App>, ApiError> {
    find_app(&state, &app).await.map(Json)
}

#[utoipa::path(post, path = "/api/apps", request_body(content = Object, description = "An app (CONTRACT §2); literal keys and passwords are stored hashed"),
    responses((status = 201), (status = 409), (status = 422)), security(("bearer" = [])))]
pub async fn create_app(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let app: App = parse(&body)?;
    let name = app.name.clone();
    let outcome = write(&state, &who, |doc| {
        if doc.apps.iter().any(|a| a.name == app.name) {
            return Err(ApiError::conflict(format!(
                "app `{}` exists; PUT /api/apps/{} replaces it",
                app.name, app.name
            )));
        }
        doc.apps.push(app);
        Ok(())
    })
    .await?;
    // Answer with what is stored: hashes, never the clear credentials.
    Ok(answer(
        StatusCode::CREATED,
        &find_app(&state, &name).await?,
        &outcome,
    ))
}

#[utoipa::path(put, path = "/api/apps/{app}", params(("app" = String, Path)), request_body(content = Object),
    responses((status = 200), (status = 201), (status = 422)), security(("bearer" = [])))]
pub async fn put_app(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let app: App = parse(&body)?;
    check_name(&name, &app.name, "app name")?;
    let mut created = false;
    let outcome = write(&state, &who, |doc| {
        match doc.apps.iter_mut().find(|a| a.name == app.name) {
            Some(existing) => *existing = app,
            None => {
                created = true;
                doc.apps.push(app);
            }
        }
        Ok(())
    })
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(answer(status, &find_app(&state, &name).await?, &outcome))
}

#[utoipa::path(delete, path = "/api/apps/{app}", params(("app" = String, Path)), responses((status = 204), (status = 404)), security(("bearer" = [])))]
pub async fn delete_app(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let outcome = write(&state, &who, |doc| {
        let before = doc.apps.len();
        doc.apps.retain(|a| a.name != name);
        if doc.apps.len() == before {
            return Err(ApiError::not_found(format!("no app `{name}`")));
        }
        Ok(())
    })
    .await?;
    Ok(gone(&outcome))
}

// ---- keys ----

fn key_view(k: &AppKey) -> serde_json::Value {
    json!({
        "id": k.id,
        "label": k.label,
        "created_at": k.created_at,
        "expires_at": k.expires_at,
    })
}

#[utoipa::path(get, path = "/api/apps/{app}/keys", params(("app" = String, Path)), responses((status = 200, description = "The app's keys (ids and dates, never secrets)"), (status = 404)), security(("bearer" = [])))]
pub async fn list_keys(
    State(state): State<Arc<AdminState>>,
    Path(app): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let app = find_app(&state, &app).await?;
    Ok(Json(
        json!({ "keys": app.keys.iter().map(key_view).collect::<Vec<_>>() }),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKeyRequest {
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    expires_at: Option<String>,
}

/// Creates a key. The answer holds the whole key, once; the store keeps only its hash.
#[utoipa::path(post, path = "/api/apps/{app}/keys", params(("app" = String, Path)),
    request_body(content = Object, description = "Optional {\"label\", \"expires_at\"}"),
    responses((status = 201, description = "The new key, shown once"), (status = 404), (status = 422, description = "The app already holds two keys")), security(("bearer" = [])))]
pub async fn create_key(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    Path(app): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: NewKeyRequest = if body.iter().all(u8::is_ascii_whitespace) {
        NewKeyRequest::default()
    } else {
        parse(&body)?
    };
    let secrets = state
        .gateway
        .secrets()
        .ok_or_else(|| ApiError::internal("this node has no node secret to hash keys with"))?;
    let new = secrets.generate_key();
    let created_at = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
    let stored = AppKey {
        id: Some(new.id.clone()),
        hash: Some(new.hash.clone()),
        label: request.label,
        created_at,
        expires_at: request.expires_at,
        secret: None,
    };
    let view = key_view(&stored);
    let outcome = write(&state, &who, |doc| {
        let target = doc
            .apps
            .iter_mut()
            .find(|a| a.name == app)
            .ok_or_else(|| ApiError::not_found(format!("no app `{app}`")))?;
        target.keys.push(stored);
        Ok(())
    })
    .await?;
    let mut body = view;
    body["key"] = json!(new.key);
    Ok(answer(StatusCode::CREATED, &body, &outcome))
}

/// Revokes a key; gateway nodes refuse it once they install the new revision (within a
/// second on every node).
#[utoipa::path(delete, path = "/api/apps/{app}/keys/{id}", params(("app" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 404)), security(("bearer" = [])))]
pub async fn revoke_key(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    Path((app, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let outcome = write(&state, &who, |doc| {
        let target = doc
            .apps
            .iter_mut()
            .find(|a| a.name == app)
            .ok_or_else(|| ApiError::not_found(format!("no app `{app}`")))?;
        let before = target.keys.len();
        target.keys.retain(|k| k.id.as_deref() != Some(id.as_str()));
        if target.keys.len() == before {
            return Err(ApiError::not_found(format!(
                "app `{app}` has no key `{id}`"
            )));
        }
        Ok(())
    })
    .await?;
    Ok(gone(&outcome))
}
