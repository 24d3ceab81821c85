//! `GET /api/internal/content-evidence`: what applying `content/evidence/` at start did (records ingested or
//! skipped, promotions applied, decided already, or refused with the gate's reasons).

use crate::content_evidence::ContentEvidenceReport;
use crate::routes::extract::AuthenticatedOperator;
use crate::service;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;

pub async fn content_evidence(
    State(state): State<AppState>,
    AuthenticatedOperator(op): AuthenticatedOperator,
) -> Json<ContentEvidenceReport> {
    Json(service::content_evidence(&state, &op))
}
