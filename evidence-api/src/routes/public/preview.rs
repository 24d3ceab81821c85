//! `POST /api/v1/preview-requests`: a private-preview request (JSON or form-encoded). Stored and honeypot
//! requests get the same 202, so a bot learns nothing.

use crate::error::ApiResult;
use crate::preview::{PreviewInput, Submitted};
use crate::routes::extract::{client_key, parse_body};
use crate::service;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::net::SocketAddr;

pub async fn submit(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let input: PreviewInput = parse_body(&headers, &body)?;
    let key = client_key(
        &state,
        &headers,
        extensions.get::<ConnectInfo<SocketAddr>>(),
    );
    match service::submit_preview_request(&state, &key, &input).await? {
        Submitted::Stored(_) | Submitted::Discarded => Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "status": "received", "message": "Thank you: we will reply to your work email." })),
        )
            .into_response()),
    }
}
