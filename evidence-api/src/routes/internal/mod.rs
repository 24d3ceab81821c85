//! The internal URL space: `/api/internal/*`. Ingest takes an ingest token; everything else an operator (bearer
//! token, or session cookie with Origin and CSRF checks). Responses are `Cache-Control: no-store`.

pub mod audit;
pub mod content;
pub mod preview;
pub mod runs;
pub mod session;

use crate::routes::errors::api_not_found;
use crate::state::AppState;
use axum::http::{header, HeaderValue};
use axum::routing::{any, get, post};
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/internal/runs", post(runs::ingest).get(runs::list))
        .route("/api/internal/runs/{run_id}", get(runs::one))
        .route("/api/internal/runs/{run_id}/promote", post(runs::promote))
        .route("/api/internal/runs/{run_id}/retract", post(runs::retract))
        .route("/api/internal/audit", get(audit::audit))
        .route(
            "/api/internal/content-evidence",
            get(content::content_evidence),
        )
        .route("/api/internal/preview-requests", get(preview::list))
        .route("/api/internal/preview-requests.csv", get(preview::csv))
        .route(
            "/api/internal/session",
            post(session::login)
                .get(session::whoami)
                .delete(session::logout),
        )
        .route("/api/internal/{*rest}", any(api_not_found))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
}
