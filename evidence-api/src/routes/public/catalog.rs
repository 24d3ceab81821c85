//! `GET /api/v1/models` (families with profiles, the adjacent lane, exclusions, benchmark rules, service
//! paths) and `GET /api/v1/gpus` (GPU specs with their datasheet sources).

use crate::error::ApiResult;
use crate::routes::extract::{parse_query, sorted_json, NoQuery};
use crate::service;
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::Json;
use serde_json::Value;

pub async fn models(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    parse_query::<NoQuery>(raw)?;
    sorted_json(&service::public_models(&state))
}

pub async fn gpus(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    parse_query::<NoQuery>(raw)?;
    sorted_json(&service::public_gpus(&state))
}
