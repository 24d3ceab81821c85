//! `GET /api/internal/preview-requests` (JSON) and `.csv` (RFC 4180, formula-neutralised): the stored
//! private-preview requests, newest first.

use crate::error::ApiResult;
use crate::routes::extract::AuthenticatedOperator;
use crate::service;
use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

pub async fn list(
    State(state): State<AppState>,
    AuthenticatedOperator(op): AuthenticatedOperator,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({ "requests": service::preview_requests(&state, &op).await? }),
    ))
}

pub async fn csv(
    State(state): State<AppState>,
    AuthenticatedOperator(op): AuthenticatedOperator,
) -> ApiResult<Response> {
    let csv = service::preview_requests_csv(&state, &op).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"preview-requests.csv\"",
            ),
        ],
        csv,
    )
        .into_response())
}
