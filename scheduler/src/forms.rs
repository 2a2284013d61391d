//! HTML form posts: sign in and out (`/login`, `/logout`) and the task
//! actions (`POST /tasks/:id/:action`). Every post must carry the session's
//! CSRF token in the `csrf_token` field, or it is rejected with 403.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use poem::http::{header, StatusCode};
use poem::web::{Data, Form, Path, Query};
use poem::{handler, IntoResponse, Request, Response};
use serde::Deserialize;
use tera::Context;

use crate::actions::{parse_action, perform};
use crate::auth::{session_cookie, throttle_keys};
use crate::error::ApiError;
use crate::page::Viewer;
use crate::server::AppState;

/// Fields of the sign-in form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    csrf_token: Option<String>,
    name: String,
    password: String,
    next: Option<String>,
}

/// Fields of the action forms and the sign-out form.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    csrf_token: Option<String>,
    assignee: Option<String>,
}

/// Query of `GET /login`.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// Serves the sign-in form (`GET /login`), starting an anonymous session
/// so that the form carries a CSRF token.
#[handler]
pub async fn login_page(
    request: &Request,
    Query(query): Query<LoginQuery>,
    Data(state): Data<&Arc<AppState>>,
) -> poem::Result<Response> {
    let mut viewer = Viewer::of(state, request);
    let mut cookie = None;
    if viewer.csrf.is_none() {
        let (id, session) = state.auth.sessions.create(None, Utc::now());
        viewer.csrf = Some(session.csrf);
        cookie = Some(session_cookie(
            &id,
            state.auth.sessions.ttl(),
            state.auth.cookie_secure,
        ));
    }
    let next = local_path(query.next.as_deref());
    let html = render_login(state, &viewer, next, None)?;
    let mut response = html
        .with_content_type("text/html; charset=utf-8")
        .into_response();
    if let Some(cookie) = cookie {
        set_cookie(&mut response, &cookie);
    }
    Ok(response)
}

fn render_login(
    state: &AppState,
    viewer: &Viewer,
    next: &str,
    error: Option<&str>,
) -> Result<String, ApiError> {
    let mut context = Context::new();
    context.insert("viewer", viewer);
    context.insert("next", next);
    context.insert("error", &error);
    state.page.render("login.html", &context)
}

/// Signs in (`POST /login`). A wrong name or password gives 401 and the
/// form again; success replaces the session and redirects to `next`. After
/// a few failures for one name or from one address, further tries get 429
/// with `Retry-After` until the wait is over, without checking the
/// password.
#[handler]
pub async fn login(
    request: &Request,
    Form(form): Form<LoginForm>,
    Data(state): Data<&Arc<AppState>>,
) -> poem::Result<Response> {
    let Some(session) = state.auth.session(request) else {
        return Ok(message(
            state,
            StatusCode::FORBIDDEN,
            "Session expired",
            "Open the sign-in page again and retry.",
            "/login",
        ));
    };
    if let Err(error) = session.check_csrf(form.csrf_token.as_deref()) {
        return Ok(message(
            state,
            error.status,
            "Rejected",
            &error.detail,
            "/login",
        ));
    }

    let next = local_path(form.next.as_deref()).to_owned();
    let address = request
        .remote_addr()
        .as_socket_addr()
        .map(|address| address.ip().to_string());
    let keys = throttle_keys(&form.name, address.as_deref());
    if let Err(wait) = state.auth.throttle.admit(&keys, Instant::now()) {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        tracing::warn!(
            user = ?form.name.chars().take(64).collect::<String>(),
            address = address.as_deref().unwrap_or("unknown"),
            retry_after_secs = seconds,
            "sign-in refused: too many failed sign-ins"
        );
        let viewer = Viewer::of(state, request);
        let error = format!(
            "Too many failed sign-ins for this name or from this address. Try again in {seconds} s."
        );
        let html = render_login(state, &viewer, &next, Some(&error))?;
        let mut response = html
            .with_content_type("text/html; charset=utf-8")
            .with_header(header::RETRY_AFTER, seconds.to_string())
            .into_response();
        response.set_status(StatusCode::TOO_MANY_REQUESTS);
        return Ok(response);
    }

    let check_state = Arc::clone(state);
    let (name, password) = (form.name.clone(), form.password);
    let accepted =
        tokio::task::spawn_blocking(move || check_state.auth.check_password(&name, &password))
            .await
            .unwrap_or(false);
    if !accepted {
        // Debug formatting escapes line breaks, so a name cannot forge log lines.
        tracing::warn!(user = ?form.name.chars().take(64).collect::<String>(), "sign-in failed");
        let viewer = Viewer::of(state, request);
        let html = render_login(state, &viewer, &next, Some("Wrong name or password."))?;
        let mut response = html
            .with_content_type("text/html; charset=utf-8")
            .into_response();
        response.set_status(StatusCode::UNAUTHORIZED);
        return Ok(response);
    }

    state.auth.throttle.succeeded(&keys);
    if let Some(old) = crate::auth::session_id(request) {
        state.auth.sessions.remove(old);
    }
    let (id, _) = state
        .auth
        .sessions
        .create(Some(form.name.clone()), Utc::now());
    tracing::info!(user = %form.name, "signed in");
    let mut response = redirect(&next);
    set_cookie(
        &mut response,
        &session_cookie(&id, state.auth.sessions.ttl(), state.auth.cookie_secure),
    );
    Ok(response)
}

/// Signs out (`POST /logout`) and expires the cookie.
#[handler]
pub async fn logout(
    request: &Request,
    Form(form): Form<ActionForm>,
    Data(state): Data<&Arc<AppState>>,
) -> poem::Result<Response> {
    let Some(session) = state.auth.session(request) else {
        return Ok(redirect("/"));
    };
    if let Err(error) = session.check_csrf(form.csrf_token.as_deref()) {
        return Ok(message(state, error.status, "Rejected", &error.detail, "/"));
    }
    if let Some(id) = crate::auth::session_id(request) {
        state.auth.sessions.remove(id);
    }
    let mut response = redirect("/");
    set_cookie(
        &mut response,
        &session_cookie("", chrono::Duration::zero(), state.auth.cookie_secure),
    );
    Ok(response)
}

/// Performs a task action from the task page (`POST /tasks/:id/:action`)
/// and redirects back to it.
#[handler]
pub async fn form_action(
    request: &Request,
    Path((id, name)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
    Data(state): Data<&Arc<AppState>>,
) -> poem::Result<Response> {
    let back = format!("/tasks/{}", crate::page::percent_encode(&id));
    let actor = match state.auth.form_actor(request, form.csrf_token.as_deref()) {
        Ok(actor) => actor,
        Err(error) => {
            return Ok(message(
                state,
                error.status,
                "Rejected",
                &error.detail,
                &back,
            ))
        }
    };
    // Forms keep trimming the field; the JSON API takes the id exactly as sent.
    let assignee = form.assignee.as_deref().map(str::trim);
    let result = match parse_action(&name, assignee) {
        Ok(action) => perform(state, &id, action, actor).await,
        Err(error) => Err(error),
    };
    match result {
        Ok(_) => Ok(redirect(&back)),
        Err(error) => Ok(message(
            state,
            error.status,
            "Not done",
            &error.detail,
            &back,
        )),
    }
}

/// Returns `next` when it is a path on this site, otherwise `/`, so that a
/// crafted link cannot redirect elsewhere after sign-in.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => {
            path
        }
        _ => "/",
    }
}

fn redirect(location: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, location)
        .finish()
}

fn set_cookie(response: &mut Response, cookie: &str) {
    if let Ok(value) = cookie.parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// Renders a short HTML page with `status`, for rejected form posts.
fn message(state: &AppState, status: StatusCode, title: &str, text: &str, back: &str) -> Response {
    let mut context = Context::new();
    context.insert("viewer", &Viewer::default());
    context.insert("title", title);
    context.insert("message", text);
    context.insert("back", back);
    let body = state
        .page
        .render("message.html", &context)
        .unwrap_or_else(|_| text.to_owned());
    let mut response = body
        .with_content_type("text/html; charset=utf-8")
        .into_response();
    response.set_status(status);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(local_path(Some("/tasks/3")), "/tasks/3");
        for outside in ["//evil.example", "https://evil.example", "/\\evil", "tasks"] {
            assert_eq!(local_path(Some(outside)), "/", "{outside}");
        }
        assert_eq!(local_path(None), "/");
    }
}
