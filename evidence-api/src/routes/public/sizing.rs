//! `GET /api/v1/sizing[?family=SLUG]`: memory arithmetic, lanes, planning index, measured where promoted.

use crate::error::ApiResult;
use crate::routes::extract::{parse_query, sorted_json};
use crate::service;
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SizingQuery {
    family: Option<String>,
}

pub async fn sizing(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let q: SizingQuery = parse_query(raw)?;
    sorted_json(&service::public_sizing(&state, q.family.as_deref()).await?)
}
