//! `/api/internal/session`: log in with name and password (POST: a fresh session cookie and CSRF token), read
//! the live session (GET), log out (DELETE).

use crate::auth;
use crate::error::{ApiError, ApiResult};
use crate::routes::extract::{client_key, header_str, parse_body, AuthenticatedOperator};
use crate::service;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    name: String,
    password: String,
}

pub async fn login(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let origin = header_str(&headers, header::ORIGIN);
    let cookie = header_str(&headers, header::COOKIE);
    let b: LoginBody = parse_body(&headers, &body)?;
    let client = client_key(
        &state,
        &headers,
        extensions.get::<ConnectInfo<SocketAddr>>(),
    );
    let login = service::login(&state, &client, &b.name, &b.password, origin, cookie).await?;
    let body = session_json(&login.session.operator.name, &login.session.csrf_token);
    Ok(with_cookie(body.into_response(), &login.set_cookie))
}

pub async fn whoami(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    let cookie = header_str(&headers, header::COOKIE);
    let session = service::session_from_cookie_header(&state, cookie)
        .await?
        .ok_or_else(|| ApiError::unauthorized("no live session"))?;
    Ok(session_json(&session.operator.name, &session.csrf_token))
}

pub async fn logout(
    State(state): State<AppState>,
    _operator: AuthenticatedOperator,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let cookie = header_str(&headers, header::COOKIE);
    service::logout(&state, cookie).await?;
    Ok(with_cookie(
        StatusCode::NO_CONTENT.into_response(),
        &auth::clear_session_cookie(),
    ))
}

/// What a session answers: the operator's name and the CSRF token state-changing requests must echo.
fn session_json(operator: &str, csrf_token: &str) -> Json<Value> {
    Json(json!({ "operator": operator, "csrf_token": csrf_token }))
}

/// `response` with a `Set-Cookie` header (session cookies are built from ASCII only).
fn with_cookie(mut response: Response, cookie: &str) -> Response {
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(cookie).expect("cookie is ASCII"),
    );
    response
}
