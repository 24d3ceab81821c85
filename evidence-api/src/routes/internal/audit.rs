//! `GET /api/internal/audit[?before=SEQ&limit=N]`: the append-only audit log, newest first.

use crate::error::{ApiError, ApiResult};
use crate::routes::extract::{parse_query, AuthenticatedOperator};
use crate::service;
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    before: Option<i64>,
    limit: Option<u32>,
}

pub async fn audit(
    State(state): State<AppState>,
    AuthenticatedOperator(op): AuthenticatedOperator,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let q: AuditQuery = parse_query(raw)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(
            ApiError::bad_request("invalid_query", "limit is between 1 and 1000")
                .with_field("limit"),
        );
    }
    Ok(Json(
        json!({ "entries": service::audit_log(&state, &op, q.before, limit).await? }),
    ))
}
