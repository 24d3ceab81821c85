//! The public URL space: `/healthz` and `/api/v1/*`. Nothing here authenticates and nothing here can read an
//! unpromoted run (the service's public reads go through the `public_claims` view). Responses default to
//! `Cache-Control: no-cache`.

pub mod catalog;
pub mod claims;
pub mod health;
pub mod preview;
pub mod sizing;

use crate::routes::errors::api_not_found;
use crate::state::AppState;
use axum::http::{header, HeaderValue};
use axum::routing::{any, get, post};
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/api/v1/openapi.json", get(health::openapi))
        .route("/api/v1/claims", get(claims::claims))
        .route("/api/v1/claims/{run_id}/record", get(claims::claim_record))
        .route("/api/v1/models", get(catalog::models))
        .route("/api/v1/gpus", get(catalog::gpus))
        .route("/api/v1/sizing", get(sizing::sizing))
        .route("/api/v1/preview-requests", post(preview::submit))
        .route("/api/v1/{*rest}", any(api_not_found))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        ))
}
