//! `GET /api/v1/claims` (promoted claims, filterable) and `GET /api/v1/claims/{run_id}/record` (the signed
//! record behind one, byte for byte as stored, so its signature can be checked).

use crate::error::ApiResult;
use crate::public::ClaimFilter;
use crate::routes::extract::{parse_query, sorted_json, NoQuery};
use crate::service;
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

pub async fn claims(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let filter: ClaimFilter = parse_query(raw)?;
    sorted_json(&service::public_claims(&state, &filter).await?)
}

pub async fn claim_record(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    parse_query::<NoQuery>(raw)?;
    let record = service::public_claim_record(&state, &run_id).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], record).into_response())
}
