//! REST collections over the configuration: upstreams, APIs, versions and global
//! policies. Each write is a whole-configuration change through
//! [`crate::config::apply_document`], so the same validation guards both paths.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tollgate_model::entity::policy_names;
use tollgate_model::{Api, Document, Policy, Upstream, Version};

use crate::AdminState;
use crate::auth::Principal;
use crate::config::{ApplyOutcome, apply_document, current_document};
use crate::problem::ApiError;

pub fn routes() -> Router<Arc<AdminState>> {
    Router::new()
        .route("/upstreams", get(list_upstreams).post(create_upstream))
        .route(
            "/upstreams/{name}",
            get(get_upstream).put(put_upstream).delete(delete_upstream),
        )
        .route("/apis", get(list_apis).post(create_api))
        .route("/apis/{api}", get(get_api).put(put_api).delete(delete_api))
        .route(
            "/apis/{api}/versions",
            get(list_versions).post(create_version),
        )
        .route(
            "/apis/{api}/versions/{version}",
            get(get_version).put(put_version).delete(delete_version),
        )
        .route("/policies", get(list_policies).post(create_policy))
        .route(
            "/policies/{name}",
            get(get_policy).put(put_policy).delete(delete_policy),
        )
}

/// Parses a JSON body, naming the offending field on error.
pub(crate) fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_string();
        let mut err = ApiError::invalid(vec![tollgate_model::Located {
            path,
            line: None,
            column: None,
            message,
        }]);
        err.status = StatusCode::BAD_REQUEST;
        err
    })
}

pub async fn read(state: &AdminState) -> Result<Document, ApiError> {
    let (_, set) = state.store.load().await?;
    current_document(&set)
}

pub(crate) async fn write(
    state: &AdminState,
    who: &Principal,
    change: impl FnOnce(&mut Document) -> Result<(), ApiError>,
) -> Result<ApplyOutcome, ApiError> {
    apply_document(
        state,
        who,
        |set| {
            let mut doc = current_document(set)?;
            change(&mut doc)?;
            Ok(doc)
        },
        None,
        false,
        None,
    )
    .await
}

/// The entity as JSON with the revision that now holds it.
pub(crate) fn answer<T: Serialize>(
    status: StatusCode,
    entity: &T,
    outcome: &ApplyOutcome,
) -> Response {
    let mut resp = (status, Json(entity)).into_response();
    if let Ok(v) = HeaderValue::from_str(&outcome.revision.to_string()) {
        resp.headers_mut().insert("x-tollgate-revision", v);
    }
    resp
}

pub(crate) fn gone(outcome: &ApplyOutcome) -> Response {
    answer(StatusCode::NO_CONTENT, &(), outcome)
        .into_response()
        .map(|_| axum::body::Body::empty())
}

pub(crate) fn check_name(path_name: &str, body_name: &str, what: &str) -> Result<(), ApiError> {
    if path_name != body_name {
        return Err(ApiError::bad_request(format!(
            "the {what} in the body (`{body_name}`) differs from the URL (`{path_name}`)"
        )));
    }
    Ok(())
}

// ---- upstreams ----

#[utoipa::path(get, path = "/api/upstreams", responses((status = 200, description = "All upstreams")), security(("bearer" = [])))]
pub async fn list_upstreams(
    State(state): State<Arc<AdminState>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(json!({ "upstreams": read(&state).await?.upstreams })))
}

#[utoipa::path(get, path = "/api/upstreams/{name}", params(("name" = String, Path)), responses((status = 200), (status = 404)), security(("bearer" = [])))]
pub async fn get_upstream(
    State(state): State<Arc<AdminState>>,
    Path(name): Path<String>,
) -> Result<Json<Upstream>, ApiError> {
    read(&state)
        .await?
        .upstreams
        .into_iter()
        .find(|u| u.name == name)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no upstream `{name}`")))
}

#[utoipa::path(post, path = "/api/upstreams", request_body(content = Object, description = "An upstream (CONTRACT §2)"),
    responses((status = 201), (status = 409), (status = 422)), security(("bearer" = [])))]
pub async fn create_upstream(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let up: Upstream = parse(&body)?;
    let created = up.clone();
    let outcome = write(&state, &who, |doc| {
        if doc.upstreams.iter().any(|u| u.name == up.name) {
            return Err(ApiError::conflict(format!(
                "upstream `{}` exists; PUT /api/upstreams/{} replaces it",
                up.name, up.name
            )));
        }
        doc.upstreams.push(up);
        Ok(())
    })
    .await?;
    Ok(answer(StatusCode::CREATED, &created, &outcome))
}

#[utoipa::path(put, path = "/api/upstreams/{name}", params(("name" = String, Path)), request_body(content = Object),
    responses((status = 200), (status = 201), (status = 422)), security(("bearer" = [])))]
pub async fn put_upstream(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let up: Upstream = parse(&body)?;
    check_name(&name, &up.name, "upstream name")?;
    let stored = up.clone();
    let mut created = false;
    let outcome = write(&state, &who, |doc| {
        match doc.upstreams.iter_mut().find(|u| u.name == up.name) {
            Some(existing) => *existing = up,
            None => {
                created = true;
                doc.upstreams.push(up);
            }
        }
        Ok(())
    })
    .await?;
    Ok(answer(
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        &stored,
        &outcome,
    ))
}

#[utoipa::path(delete, path = "/api/upstreams/{name}", params(("name" = String, Path)),
    responses((status = 204), (status = 404), (status = 422, description = "Still used by a version")), security(("bearer" = [])))]
pub async fn delete_upstream(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let outcome = write(&state, &who, |doc| {
        let before = doc.upstreams.len();
        doc.upstreams.retain(|u| u.name != name);
        if doc.upstreams.len() == before {
            return Err(ApiError::not_found(format!("no upstream `{name}`")));
        }
        Ok(())
    })
    .await?;
    Ok(gone(&outcome))
}

// ---- APIs ----

#[utoipa::path(get, path = "/api/apis", responses((status = 200, description = "All APIs with their versions")), security(("bearer" = [])))]
pub async fn list_apis(
    State(state): State<Arc<AdminState>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(json!({ "apis": read(&state).await?.apis })))
}

fn find_api<'a>(doc: &'a mut Document, name: &str) -> Result<&'a mut Api, ApiError> {
    doc.apis
        .iter_mut()
        .find(|a| a.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no API `{name}`")))
}

#[utoipa::path(get, path = "/api/apis/{api}", params(("api" = String, Path)), responses((status = 200), (status = 404)), security(("bearer" = [])))]
pub async fn get_api(
    State(state): State<Arc<AdminState>>,
    Path(name): Path<String>,
) -> Result<Json<Api>, ApiError> {
    let mut doc = read(&state).await?;
    Ok(Json(find_api(&mut doc, &name)?.clone()))
}

#[utoipa::path(post, path = "/api/apis", request_body(content = Object, description = "An API, optionally with its versions"),
    responses((status = 201), (status = 409), (status = 422)), security(("bearer" = [])))]
pub async fn create_api(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let api: Api = parse(&body)?;
    let created = api.clone();
    let outcome = write(&state, &who, |doc| {
        if doc.apis.iter().any(|a| a.name == api.name) {
            return Err(ApiError::conflict(format!(
                "API `{}` exists; PUT /api/apis/{} replaces it",
                api.name, api.name
            )));
        }
        doc.apis.push(api);
        Ok(())
    })
    .await?;
    Ok(answer(StatusCode::CREATED, &created, &outcome))
}

/// Replaces an API's settings. Versions in the body replace the stored ones; without
/// `versions`, the stored versions are kept.
#[utoipa::path(put, path = "/api/apis/{api}", params(("api" = String, Path)), request_body(content = Object),
    responses((status = 200), (status = 201), (status = 422)), security(("bearer" = [])))]
pub async fn put_api(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut api: Api = parse(&body)?;
    check_name(&name, &api.name, "API name")?;
    let mut created = false;
    let mut stored = None;
    let outcome = write(&state, &who, |doc| {
        match doc.apis.iter_mut().find(|a| a.name == api.name) {
            Some(existing) => {
                if api.versions.is_empty() {
                    api.versions = std::mem::take(&mut existing.versions);
                }
                stored = Some(api.clone());
                *existing = api;
            }
            None => {
                created = true;
                stored = Some(api.clone());
                doc.apis.push(api);
            }
        }
        Ok(())
    })
    .await?;
    Ok(answer(
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        &stored,
        &outcome,
    ))
}

#[utoipa::path(delete, path = "/api/apis/{api}", params(("api" = String, Path)), responses((status = 204), (status = 404)), security(("bearer" = [])))]
pub async fn delete_api(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let outcome = write(&state, &who, |doc| {
        find_api(doc, &name)?;
        doc.apis.retain(|a| a.name != name);
        Ok(())
    })
    .await?;
    Ok(gone(&outcome))
}

// ---- versions ----

#[utoipa::path(get, path = "/api/apis/{api}/versions", params(("api" = String, Path)), responses((status = 200), (status = 404)), security(("bearer" = [])))]
pub async fn list_versions(
    State(state): State<Arc<AdminState>>,
    Path(api): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut doc = read(&state).await?;
    Ok(Json(
        json!({ "versions": find_api(&mut doc, &api)?.versions }),
    ))
}

#[utoipa::path(get, path = "/api/apis/{api}/versions/{version}", params(("api" = String, Path), ("version" = String, Path)),
    responses((status = 200), (status = 404)), security(("bearer" = [])))]
pub async fn get_version(
    State(state): State<Arc<AdminState>>,
    Path((api, version)): Path<(String, String)>,
) -> Result<Json<Version>, ApiError> {
    let mut doc = read(&state).await?;
    find_api(&mut doc, &api)?
        .versions
        .iter()
        .find(|v| v.version == version)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no version `{version}` of API `{api}`")))
}

#[utoipa::path(post, path = "/api/apis/{api}/versions", params(("api" = String, Path)), request_body(content = Object),
    responses((status = 201), (status = 404), (status = 409), (status = 422)), security(("bearer" = [])))]
pub async fn create_version(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    Path(api): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let version: Version = parse(&body)?;
    let created = version.clone();
    let outcome = write(&state, &who, |doc| {
        let a = find_api(doc, &api)?;
        if a.versions.iter().any(|v| v.version == version.version) {
            return Err(ApiError::conflict(format!(
                "version `{}` of API `{api}` exists",
                version.version
            )));
        }
        a.versions.push(version);
        Ok(())
    })
    .await?;
    Ok(answer(StatusCode::CREATED, &created, &outcome))
}

#[utoipa::path(put, path = "/api/apis/{api}/versions/{version}", params(("api" = String, Path), ("version" = String, Path)),
    request_body(content = Object), responses((status = 200), (status = 201), (status = 404), (status = 422)), security(("bearer" = [])))]
pub async fn put_version(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    Path((api, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let version: Version = parse(&body)?;
    check_name(&name, &version.version, "version")?;
    let stored = version.clone();
    let mut created = false;
    let outcome = write(&state, &who, |doc| {
        let a = find_api(doc, &api)?;
        match a.versions.iter_mut().find(|v| v.version == version.version) {
            Some(existing) => *existing = version,
            None => {
                created = true;
                a.versions.push(version);
            }
        }
        Ok(())
    })
    .await?;
    Ok(answer(
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        &stored,
        &outcome,
    ))
}

#[utoipa::path(delete, path = "/api/apis/{api}/versions/{version}", params(("api" = String, Path), ("version" = String, Path)),
    responses((status = 204), (status = 404), (status = 422)), security(("bearer" = [])))]
pub async fn delete_version(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    Path((api, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let outcome = write(&state, &who, |doc| {
        let a = find_api(doc, &api)?;
        let before = a.versions.len();
        a.versions.retain(|v| v.version != version);
        if a.versions.len() == before {
            return Err(ApiError::not_found(format!(
                "no version `{version}` of API `{api}`"
            )));
        }
        Ok(())
    })
    .await?;
    Ok(gone(&outcome))
}

// ---- global policies ----

fn named(policies: &[Policy]) -> Vec<serde_json::Value> {
    policy_names(policies)
        .into_iter()
        .zip(policies)
        .map(|(name, p)| json!({ "name": name, "policy": p }))
        .collect()
}

fn policy_index(doc: &Document, name: &str) -> Result<usize, ApiError> {
    policy_names(&doc.policies)
        .iter()
        .position(|n| n == name)
        .ok_or_else(|| ApiError::not_found(format!("no global policy `{name}`")))
}

#[utoipa::path(get, path = "/api/policies", responses((status = 200, description = "Global policies with their names")), security(("bearer" = [])))]
pub async fn list_policies(
    State(state): State<Arc<AdminState>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(
        json!({ "policies": named(&read(&state).await?.policies) }),
    ))
}

#[utoipa::path(get, path = "/api/policies/{name}", params(("name" = String, Path)), responses((status = 200), (status = 404)), security(("bearer" = [])))]
pub async fn get_policy(
    State(state): State<Arc<AdminState>>,
    Path(name): Path<String>,
) -> Result<Json<Policy>, ApiError> {
    let doc = read(&state).await?;
    let i = policy_index(&doc, &name)?;
    Ok(Json(doc.policies[i].clone()))
}

#[utoipa::path(post, path = "/api/policies", request_body(content = Object, description = "One policy, e.g. {\"ip_restrict\": {\"deny\": [\"203.0.113.0/24\"]}}"),
    responses((status = 201), (status = 422)), security(("bearer" = [])))]
pub async fn create_policy(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let policy: Policy = parse(&body)?;
    let mut name = String::new();
    let outcome = write(&state, &who, |doc| {
        doc.policies.push(policy.clone());
        name = policy_names(&doc.policies).pop().unwrap_or_default();
        Ok(())
    })
    .await?;
    Ok(answer(
        StatusCode::CREATED,
        &json!({ "name": name, "policy": policy }),
        &outcome,
    ))
}

#[utoipa::path(put, path = "/api/policies/{name}", params(("name" = String, Path)), request_body(content = Object),
    responses((status = 200), (status = 404), (status = 422)), security(("bearer" = [])))]
pub async fn put_policy(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let policy: Policy = parse(&body)?;
    let stored = policy.clone();
    let outcome = write(&state, &who, |doc| {
        let i = policy_index(doc, &name)?;
        if doc.policies[i].kind() != policy.kind() {
            return Err(ApiError::bad_request(format!(
                "`{name}` is a {} policy; create a new one instead",
                doc.policies[i].kind()
            )));
        }
        doc.policies[i] = policy;
        Ok(())
    })
    .await?;
    Ok(answer(
        StatusCode::OK,
        &json!({ "name": name, "policy": stored }),
        &outcome,
    ))
}

#[utoipa::path(delete, path = "/api/policies/{name}", params(("name" = String, Path)), responses((status = 204), (status = 404)), security(("bearer" = [])))]
pub async fn delete_policy(
    State(state): State<Arc<AdminState>>,
    axum::Extension(who): axum::Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let outcome = write(&state, &who, |doc| {
        let i = policy_index(doc, &name)?;
        doc.policies.remove(i);
        Ok(())
    })
    .await?;
    Ok(gone(&outcome))
}
