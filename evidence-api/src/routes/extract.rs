//! What handlers take from a request: a query or body parsed into a type (400/415 naming the problem), the
//! client's rate-limit key, the authenticated principal, and the JSON form of a public document.

use crate::auth::{self, Need, Principal};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use std::net::SocketAddr;

/// Parses a query string into `T` (unknown parameters refused), 400 naming the parameter.
pub fn parse_query<T: DeserializeOwned + Default>(raw: Option<String>) -> ApiResult<T> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(T::default());
    };
    serde_urlencoded::from_str(&raw).map_err(|e| {
        let message = e.to_string();
        let field = message.split('`').nth(1).unwrap_or_default().to_string();
        ApiError::bad_request("invalid_query", message).with_field(field)
    })
}

/// Parses a JSON or form-encoded body into `T`; 400 naming the field, 415 for other content types.
pub fn parse_body<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> ApiResult<T> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/json" => {
            // Only an object: serde would read an array positionally into a struct's fields.
            if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
                return Err(ApiError::bad_request(
                    "invalid_body",
                    "the body must be one JSON object",
                ));
            }
            let mut de = serde_json::Deserializer::from_slice(body);
            let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
                let field = e.path().to_string();
                let inner = e.into_inner().to_string();
                let field = match inner.strip_prefix("missing field `") {
                    Some(rest) => rest.split('`').next().unwrap_or_default().to_string(),
                    None if field == "." => inner
                        .strip_prefix("unknown field `")
                        .and_then(|r| r.split('`').next())
                        .unwrap_or_default()
                        .to_string(),
                    None => field,
                };
                ApiError::bad_request("invalid_body", inner).with_field(field)
            })?;
            de.end().map_err(|_| {
                ApiError::bad_request(
                    "invalid_body",
                    "the body must be one JSON object, with nothing after it",
                )
            })?;
            Ok(value)
        }
        "application/x-www-form-urlencoded" => serde_urlencoded::from_bytes(body).map_err(|e| {
            let message = e.to_string();
            let field = message.split('`').nth(1).unwrap_or_default().to_string();
            ApiError::bad_request("invalid_body", message).with_field(field)
        }),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send application/json or application/x-www-form-urlencoded",
        )),
    }
}

/// Refuses (415) a body whose `Content-Type` is not `application/json` (parameters such as a charset allowed).
pub fn require_json(headers: &HeaderMap) -> ApiResult<()> {
    let mime = header_str(headers, header::CONTENT_TYPE)
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    if mime.as_deref() == Some("application/json") {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the record as application/json",
        ))
    }
}

/// The client's address as the rate limits and the audit log see it: the first `X-Forwarded-For` address when
/// the server trusts its proxy, else the peer's address.
pub fn client_key(
    state: &AppState,
    headers: &HeaderMap,
    connect: Option<&ConnectInfo<SocketAddr>>,
) -> String {
    if state.settings.trust_forwarded_for {
        if let Some(first) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
        {
            return first.trim().to_string();
        }
    }
    connect
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// A public document as JSON with its object keys in sorted order (the order the API has always written).
pub fn sorted_json<T: serde::Serialize>(doc: &T) -> ApiResult<Json<Value>> {
    serde_json::to_value(doc)
        .map(Json)
        .map_err(|e| ApiError::internal("document does not serialise", e))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoQuery {}

pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    need: Need,
    form_csrf: Option<&str>,
) -> ApiResult<Principal> {
    auth::authenticate(
        &state.db.writer,
        headers,
        method,
        need,
        state.settings.public_origin.as_str(),
        state.settings.session_lifetime(),
        form_csrf,
    )
    .await
}

pub async fn operator(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    form_csrf: Option<&str>,
) -> ApiResult<auth::Operator> {
    match authenticate(state, headers, method, Need::Operator, form_csrf).await? {
        Principal::Operator(op) => Ok(op),
        Principal::Ingest { .. } => unreachable!("authenticate checks the need"),
    }
}

/// An operator authenticated from the request's head (bearer token, or session cookie + Origin + CSRF header),
/// for routes whose CSRF token cannot come in a form body. Routes that accept a form token (promote, retract)
/// call `operator` themselves once the body is parsed.
pub struct AuthenticatedOperator(pub auth::Operator);

impl axum::extract::FromRequestParts<AppState> for AuthenticatedOperator {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        operator(state, &parts.headers, &parts.method, None)
            .await
            .map(AuthenticatedOperator)
    }
}

/// A request header as text (None when absent or not visible ASCII).
pub fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}
