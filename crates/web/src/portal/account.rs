//! Sign-up, sign-in, sign-out and password reset; and the developer's own account:
//! their data, and its erasure.

use super::*;

// ---- sign-up, sign-in, reset ----

#[derive(Template)]
#[template(path = "portal/signup.html")]
pub(super) struct SignupPage {
    v: &'static str,
    csrf: String,
    form: SignupForm,
    errors: HashMap<String, String>,
    error: Option<String>,
}

#[derive(Deserialize, Default, Clone)]
pub(super) struct SignupForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    organization: String,
    #[serde(default)]
    password: String,
}

pub(super) fn with_form_cookie(mut resp: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(c) = cookie {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

pub(super) fn signup_again(
    headers: &HeaderMap,
    status: StatusCode,
    form: SignupForm,
    errors: HashMap<String, String>,
    error: Option<String>,
) -> Response {
    let (csrf, cookie) = form_token(headers);
    let resp = page(
        status,
        &SignupPage {
            v: crate::assets::VERSION,
            csrf,
            form: SignupForm {
                password: String::new(),
                ..form
            },
            errors,
            error,
        },
    );
    with_form_cookie(resp, cookie)
}

pub(super) async fn signup_form(headers: HeaderMap) -> Response {
    signup_again(
        &headers,
        StatusCode::OK,
        SignupForm::default(),
        HashMap::new(),
        None,
    )
}

pub(super) fn signed_in(headers: &HeaderMap, id: &str, to: &str) -> Response {
    let mut resp = see_other(to);
    resp.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(
            PORTAL_COOKIE,
            id,
            session::SESSION_SECS,
            false,
            is_https(headers),
        ),
    );
    resp
}

pub(super) async fn signup(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Form(f): Form<SignupForm>,
) -> Response {
    if !form_token_ok(&headers, &f.csrf) {
        return signup_again(
            &headers,
            StatusCode::FORBIDDEN,
            f,
            HashMap::new(),
            Some("This form had expired. Please send it again.".to_string()),
        );
    }
    let email = f.email.trim().to_ascii_lowercase();
    let mut errors = HashMap::new();
    if let Some(p) = email_problem(&email) {
        errors.insert("email".to_string(), p.to_string());
    }
    if let Some(p) = password_problem(&f.password) {
        errors.insert("password".to_string(), p);
    }
    if f.name.len() > 100 {
        errors.insert("name".to_string(), "use at most 100 characters".to_string());
    }
    if f.organization.len() > 100 {
        errors.insert(
            "organization".to_string(),
            "use at most 100 characters".to_string(),
        );
    }
    if !errors.is_empty() {
        return signup_again(&headers, StatusCode::UNPROCESSABLE_ENTITY, f, errors, None);
    }
    let doc = match document(&web).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let taken = "an account with this e-mail exists: sign in, or reset your password";
    if doc
        .developers
        .iter()
        .any(|d| d.email.eq_ignore_ascii_case(&email))
    {
        errors.insert("email".to_string(), taken.to_string());
        return signup_again(&headers, StatusCode::UNPROCESSABLE_ENTITY, f, errors, None);
    }
    let hash = hash_password(&f.password).await;
    match web.admin.store.create_portal_account(&email, &hash).await {
        Ok(true) => {}
        Ok(false) => {
            errors.insert("email".to_string(), taken.to_string());
            return signup_again(&headers, StatusCode::UNPROCESSABLE_ENTITY, f, errors, None);
        }
        Err(e) => return tollgate_admin::ApiError::from(e).into_response(),
    }
    let who = Principal {
        role: Role::Editor,
        label: format!("developer:{email}"),
        from: ip.0.clone(),
        team: None,
        scopes: None,
    };
    let mut developer = json!({ "email": email });
    if !f.name.trim().is_empty() {
        developer["name"] = json!(f.name.trim());
    }
    if !f.organization.trim().is_empty() {
        developer["organization"] = json!(f.organization.trim());
    }
    let answer = web
        .api
        .call(&who, Method::POST, "/api/developers", Some(developer))
        .await;
    if !answer.ok() {
        let _ = web.admin.store.delete_portal_account(&email).await;
        let errors = answer.field_errors();
        let detail = answer.detail();
        return signup_again(
            &headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            f,
            errors,
            Some(detail),
        );
    }
    tracing::info!(email = %email, from = %ip.0, "developer signed up");
    match session::start(&web.admin.store, "portal", &email).await {
        Ok((id, _)) => signed_in(&headers, &id, "/apps?msg=welcome"),
        Err(e) => e.into_response(),
    }
}

#[derive(Template)]
#[template(path = "portal/login.html")]
pub(super) struct LoginPage {
    v: &'static str,
    csrf: String,
    email: String,
    next: String,
    error: Option<String>,
    flash: Flash,
}

#[derive(Deserialize, Default)]
pub(super) struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    msg: Option<String>,
}

/// Only a path on this site is followed after sign-in.
pub(super) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/apps".to_string(),
    }
}

pub(super) fn login_again(
    headers: &HeaderMap,
    status: StatusCode,
    email: &str,
    next: &str,
    error: Option<String>,
    flash: Flash,
) -> Response {
    let (csrf, cookie) = form_token(headers);
    let resp = page(
        status,
        &LoginPage {
            v: crate::assets::VERSION,
            csrf,
            email: email.to_string(),
            next: next.to_string(),
            error,
            flash,
        },
    );
    with_form_cookie(resp, cookie)
}

pub(super) async fn login_form(headers: HeaderMap, Query(q): Query<LoginQuery>) -> Response {
    let next = safe_next(q.next.as_deref());
    login_again(
        &headers,
        StatusCode::OK,
        "",
        &next,
        None,
        Flash::from_code(q.msg.as_deref()),
    )
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

pub(super) async fn login(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let email = f.email.trim().to_ascii_lowercase();
    let next = safe_next(Some(&f.next));
    if !form_token_ok(&headers, &f.csrf) {
        let e = Some("This form had expired. Please sign in again.".to_string());
        return login_again(
            &headers,
            StatusCode::FORBIDDEN,
            &email,
            &next,
            e,
            Flash::default(),
        );
    }
    if let Some(wait) = web.limiter.blocked(&email, &ip.0) {
        let e = Some(format!(
            "Too many failed sign-ins. Try again in {} minutes.",
            wait.as_secs().div_ceil(60)
        ));
        let mut resp = login_again(
            &headers,
            StatusCode::TOO_MANY_REQUESTS,
            &email,
            &next,
            e,
            Flash::default(),
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, wait.as_secs().max(1).into());
        return resp;
    }
    let stored = match web.admin.store.portal_account(&email).await {
        Ok(s) => s,
        Err(e) => return tollgate_admin::ApiError::from(e).into_response(),
    };
    let blocked = match document(&web).await {
        Ok(doc) => doc
            .developers
            .iter()
            .find(|d| d.email.eq_ignore_ascii_case(&email))
            .is_none_or(|d| d.blocked),
        Err(r) => return r,
    };
    let matches = verify_password(&f.password, stored.as_deref().unwrap_or(decoy_hash())).await;
    if !matches || stored.is_none() || blocked {
        web.limiter.failed(&email, &ip.0);
        tracing::warn!(email = %email, from = %ip.0, "portal sign-in failed");
        let e = Some("That e-mail and password do not match an account.".to_string());
        return login_again(
            &headers,
            StatusCode::UNAUTHORIZED,
            &email,
            &next,
            e,
            Flash::default(),
        );
    }
    web.limiter.succeeded(&email);
    match session::start(&web.admin.store, "portal", &email).await {
        Ok((id, _)) => signed_in(&headers, &id, &next),
        Err(e) => e.into_response(),
    }
}

pub(super) async fn logout(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Some(dev) = current_dev(&web, &headers, &ip).await
        && let Err(r) = check_csrf(&dev, &f.csrf)
    {
        return r;
    }
    session::sign_out(&web.admin.store, &headers, PORTAL_COOKIE).await
}

#[derive(Template)]
#[template(path = "portal/reset.html")]
pub(super) struct ResetPage {
    v: &'static str,
    csrf: String,
    token: String,
    error: Option<String>,
    flash: Flash,
}

/// How long a reset link works.
pub(super) const RESET_SECS: i64 = 3600;

pub(super) async fn reset_form(headers: HeaderMap) -> Response {
    let (csrf, cookie) = form_token(&headers);
    with_form_cookie(
        ok(&ResetPage {
            v: crate::assets::VERSION,
            csrf,
            token: String::new(),
            error: None,
            flash: Flash::default(),
        }),
        cookie,
    )
}

#[derive(Deserialize)]
pub(super) struct ResetForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
}

/// Sends a reset link to a developer's address. With no mail server configured the link
/// is written to the node's log, for the operator to pass on. The answer is the same
/// whether or not the address has an account.
pub(super) async fn reset(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Form(f): Form<ResetForm>,
) -> Response {
    if !form_token_ok(&headers, &f.csrf) {
        return see_other("/reset");
    }
    let email = f.email.trim().to_ascii_lowercase();
    if web.limiter.blocked(&email, &ip.0).is_some() {
        return see_other("/login?msg=reset-sent");
    }
    // Each request counts against the same limit as a failed sign-in.
    web.limiter.failed(&email, &ip.0);
    let known = match document(&web).await {
        Ok(doc) => doc
            .developers
            .iter()
            .any(|d| d.email.eq_ignore_ascii_case(&email) && !d.blocked),
        Err(r) => return r,
    };
    if known {
        let token = session::random_token(32);
        if let Err(e) = web
            .admin
            .store
            .create_reset(&hash_token(&token), "portal", &email, RESET_SECS)
            .await
        {
            return tollgate_admin::ApiError::from(e).into_response();
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        tracing::warn!(
            email = %email,
            link = %format!("http://{host}/reset/confirm?token={token}"),
            "portal password reset requested; no mail server is configured, so the link is written here (valid for 1 hour, once)"
        );
    }
    see_other("/login?msg=reset-sent")
}

#[derive(Deserialize, Default)]
pub(super) struct TokenQuery {
    #[serde(default)]
    token: String,
}

pub(super) async fn reset_confirm_form(
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Response {
    let (csrf, cookie) = form_token(&headers);
    with_form_cookie(
        ok(&ResetPage {
            v: crate::assets::VERSION,
            csrf,
            token: q.token,
            error: None,
            flash: Flash::default(),
        }),
        cookie,
    )
}

#[derive(Deserialize)]
pub(super) struct NewPasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
}

pub(super) async fn reset_confirm(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(f): Form<NewPasswordForm>,
) -> Response {
    let again = |status: StatusCode, error: String| {
        let (csrf, cookie) = form_token(&headers);
        with_form_cookie(
            page(
                status,
                &ResetPage {
                    v: crate::assets::VERSION,
                    csrf,
                    token: f.token.clone(),
                    error: Some(error),
                    flash: Flash::default(),
                },
            ),
            cookie,
        )
    };
    if !form_token_ok(&headers, &f.csrf) {
        return again(
            StatusCode::FORBIDDEN,
            "This form had expired. Please send it again.".to_string(),
        );
    }
    if let Some(p) = password_problem(&f.password) {
        return again(StatusCode::UNPROCESSABLE_ENTITY, format!("Password: {p}."));
    }
    let email = match web
        .admin
        .store
        .take_reset(&hash_token(&f.token), "portal")
        .await
    {
        Ok(Some(e)) => e,
        Ok(None) => {
            return again(
                StatusCode::BAD_REQUEST,
                "This reset link is not valid any more: links work once, for an hour. Ask for a new one."
                    .to_string(),
            );
        }
        Err(e) => return tollgate_admin::ApiError::from(e).into_response(),
    };
    let hash = hash_password(&f.password).await;
    if let Err(e) = web.admin.store.set_portal_password(&email, &hash).await {
        return tollgate_admin::ApiError::from(e).into_response();
    }
    let _ = web.admin.store.delete_sessions_of("portal", &email).await;
    see_other("/login?msg=password-set")
}

// ---- the developer's own account: their data, and erasure ----

#[derive(Template)]
#[template(path = "portal/account.html")]
pub(super) struct AccountPage {
    f: Frame,
    error: Option<String>,
}

pub(super) async fn account(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
) -> Response {
    match require_dev(&web, &headers, &ip, "/account").await {
        Ok(dev) => ok(&AccountPage {
            f: Frame::new("Your account", "account", Some(&dev), Flash::default()),
            error: None,
        }),
        Err(r) => r,
    }
}

/// The developer's own data, as the admin API's export gives it.
pub(super) fn own_data_principal(dev: &Dev) -> Principal {
    // Export and erasure need the admin role in the API; here they are only ever called
    // for the signed-in developer's own e-mail.
    Principal {
        role: Role::Admin,
        ..dev.who.clone()
    }
}

pub(super) async fn account_export(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
) -> Response {
    let dev = match require_dev(&web, &headers, &ip, "/account").await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let answer = web
        .api
        .get(
            &own_data_principal(&dev),
            &format!("/api/developers/{}/export", enc(&dev.email)),
        )
        .await;
    if !answer.ok() {
        return (answer.status, answer.detail()).into_response();
    }
    let body = serde_json::to_string_pretty(&answer.body).unwrap_or_default();
    (
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"my-data.json\"".to_string(),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response()
}

#[derive(Deserialize)]
pub(super) struct DeleteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
}

/// Erases the developer's account, apps and keys, after they confirm with their password.
pub(super) async fn account_delete(
    State(web): State<Arc<Web>>,
    ip: ClientIp,
    headers: HeaderMap,
    Form(f): Form<DeleteForm>,
) -> Response {
    let dev = match require_dev(&web, &headers, &ip, "/account").await {
        Ok(d) => d,
        Err(r) => return r,
    };
    if let Err(r) = check_csrf(&dev, &f.csrf) {
        return r;
    }
    let stored = web
        .admin
        .store
        .portal_account(&dev.email)
        .await
        .ok()
        .flatten();
    let matches = verify_password(&f.password, stored.as_deref().unwrap_or(decoy_hash())).await;
    if !matches {
        web.limiter.failed(&dev.email, &ip.0);
        return page(
            StatusCode::UNPROCESSABLE_ENTITY,
            &AccountPage {
                f: Frame::new("Your account", "account", Some(&dev), Flash::default()),
                error: Some("That is not your password: nothing was deleted.".to_string()),
            },
        );
    }
    let answer = web
        .api
        .call(
            &own_data_principal(&dev),
            Method::POST,
            &format!("/api/developers/{}/erase", enc(&dev.email)),
            None,
        )
        .await;
    if !answer.ok() {
        return page(
            answer.status,
            &AccountPage {
                f: Frame::new("Your account", "account", Some(&dev), Flash::default()),
                error: Some(answer.detail()),
            },
        );
    }
    let mut resp = see_other("/?msg=account-deleted");
    resp.headers_mut()
        .append(header::SET_COOKIE, session::clear_cookie(PORTAL_COOKIE));
    resp
}
